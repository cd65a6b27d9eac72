//! The dimensions a login can be sliced by, and their values interned to
//! small ids so that counting is array arithmetic. Each dimension holds a
//! bounded number of distinct values; past the cap new values count as
//! `(other)`, so memory does not grow with the log.

use crate::record::Record;
use rustc_hash::FxHashMap;

pub const DIMENSIONS: usize = 11;

/// Dimension names as shown in reports (`name=value`).
pub const NAMES: [&str; DIMENSIONS] = [
    "region",
    "platform",
    "app_version",
    "server_version",
    "instance",
    "db_role",
    "shard",
    "ip",
    "outcome",
    "user_shape",
    "user_length",
];

pub const SERVER_VERSION: usize = 3;
pub const DB_ROLE: usize = 5;
pub const SHARD: usize = 6;
pub const IP: usize = 7;

/// Value id of an absent or empty field: never reported as a cause.
pub const EMPTY: u16 = 0;
/// Value id of everything past a dimension's cap.
pub const OTHER: u16 = 1;

/// Distinct values kept per dimension (IP /24 networks get more room: an
/// attack hides among many of them).
fn cap(dim: usize) -> usize {
    if dim == IP {
        8192
    } else {
        1024
    }
}

/// The values of one event, one id per dimension.
pub type Tuple = [u16; DIMENSIONS];

#[derive(Debug, Clone)]
pub struct Dictionary {
    ids: FxHashMap<Box<str>, u16>,
    names: Vec<Box<str>>,
    cap: usize,
}

impl Dictionary {
    fn new(cap: usize) -> Self {
        Self {
            ids: FxHashMap::default(),
            names: vec!["".into(), "(other)".into()],
            cap,
        }
    }

    pub fn intern(&mut self, value: &str) -> u16 {
        if value.is_empty() {
            return EMPTY;
        }
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        if self.names.len() >= self.cap {
            return OTHER;
        }
        let id = self.names.len() as u16;
        self.names.push(value.into());
        self.ids.insert(value.into(), id);
        id
    }

    pub fn id(&self, value: &str) -> Option<u16> {
        self.ids.get(value).copied()
    }

    pub fn name(&self, id: u16) -> &str {
        &self.names[usize::from(id)]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.len() <= 2
    }
}

/// All dictionaries, one per dimension.
#[derive(Debug, Clone)]
pub struct Dictionaries(pub Vec<Dictionary>);

impl Default for Dictionaries {
    fn default() -> Self {
        Self((0..DIMENSIONS).map(|d| Dictionary::new(cap(d))).collect())
    }
}

impl Dictionaries {
    pub fn tuple(&mut self, r: &Record) -> Tuple {
        let d = &mut self.0;
        [
            d[0].intern(&r.region),
            d[1].intern(&r.platform),
            d[2].intern(&r.app_version),
            d[3].intern(&r.server_version),
            d[4].intern(&r.instance),
            d[5].intern(&r.db_role),
            d[6].intern(r.shard.as_deref().unwrap_or("")),
            d[7].intern(network(&r.ip)),
            d[8].intern(&r.outcome),
            d[9].intern(user_shape(&r.user)),
            d[10].intern(user_length(&r.user)),
        ]
    }

    /// `dimension=value` as reports print it.
    pub fn label(&self, dim: usize, id: u16) -> String {
        let value = self.0[dim].name(id);
        if dim == IP && id != OTHER {
            let suffix = if value.contains(':') {
                "::/48"
            } else {
                ".0/24"
            };
            format!("{}={value}{suffix}", NAMES[dim])
        } else {
            format!("{}={value}", NAMES[dim])
        }
    }
}

/// The network an address belongs to, as a prefix of its text: `a.b.c` for
/// IPv4 (/24), the first three groups for IPv6 (/48). No allocation.
pub fn network(ip: &str) -> &str {
    if ip.contains(':') {
        match ip.match_indices(':').nth(2) {
            Some((i, _)) => &ip[..i],
            None => ip.trim_end_matches(':'),
        }
    } else {
        match ip.rfind('.') {
            Some(i) => &ip[..i],
            None => ip,
        }
    }
}

/// What a user name looks like: stuffing lists are full of e-mail addresses
/// and generated names, real users' names are not.
pub fn user_shape(user: &str) -> &'static str {
    if user.is_empty() {
        ""
    } else if user.contains('@') {
        "email"
    } else if user.bytes().all(|b| b.is_ascii_digit()) {
        "digits"
    } else if user.bytes().last().is_some_and(|b| b.is_ascii_digit()) {
        "name+digits"
    } else {
        "name"
    }
}

pub fn user_length(user: &str) -> &'static str {
    match user.chars().count() {
        0 => "",
        1..=8 => "1-8",
        9..=16 => "9-16",
        _ => "17+",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_user_features() {
        assert_eq!(network("10.1.2.3"), "10.1.2");
        assert_eq!(network("2001:db8:1:2::1"), "2001:db8:1");
        assert_eq!(user_shape("ann@example.com"), "email");
        assert_eq!(user_shape("jdoe1987"), "name+digits");
        assert_eq!(user_length("siokcronin"), "9-16");
    }

    #[test]
    fn values_past_the_cap_are_other() {
        let mut d = Dictionary::new(4);
        assert_eq!(d.intern("a"), 2);
        assert_eq!(d.intern("b"), 3);
        assert_eq!(d.intern("c"), OTHER);
        assert_eq!(d.intern("a"), 2);
        assert_eq!(d.intern(""), EMPTY);
    }
}
