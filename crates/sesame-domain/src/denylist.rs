//! The operator's block list: addresses refused before any other work.
//!
//! For abuse that stays under every rate limit, such as credential stuffing
//! spread over a few hundred addresses, each sending less than the
//! per-address limits allow: `sesame triage` names the addresses, the
//! operator lists them, and every instance refuses their logins at once,
//! before admission, the shared limits or the database.
//!
//! The file: one address (`198.51.100.7`) or network (`198.51.100.0/24`,
//! `2001:db8::/48`) per line; `#` starts a comment. Single addresses are
//! looked up in a hash set, networks one by one: a list of any number of
//! addresses and a few hundred networks costs well under a microsecond a
//! login.

use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DenyList {
    addresses: HashSet<IpAddr>,
    networks: Vec<IpNet>,
}

/// A line of a block list that is neither an address nor a network.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {text:?} is not an IP address or network")]
pub struct DenyListError {
    pub line: usize,
    pub text: String,
}

impl DenyList {
    /// Reads a block list; the first bad line is an error, so that a typo
    /// never silently unblocks what the rest of the file lists.
    pub fn parse(text: &str) -> Result<Self, DenyListError> {
        let mut list = DenyList::default();
        for (n, raw) in text.lines().enumerate() {
            let entry = raw.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let bad = || DenyListError {
                line: n + 1,
                text: entry.to_owned(),
            };
            if let Ok(ip) = entry.parse::<IpAddr>() {
                list.addresses.insert(ip.to_canonical());
                continue;
            }
            let net = entry.parse::<IpNet>().map_err(|_| bad())?.trunc();
            if net.prefix_len() == net.max_prefix_len() {
                list.addresses.insert(net.addr());
            } else {
                list.networks.push(net);
            }
        }
        Ok(list)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.addresses.contains(&ip) || self.networks.iter().any(|n| n.contains(&ip))
    }

    /// Entries: addresses and networks.
    pub fn len(&self) -> usize {
        self.addresses.len() + self.networks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The list a running service checks, replaced whole when its file
/// changes: a login sees the old list or the new one, never half of each.
#[derive(Debug, Clone, Default)]
pub struct SharedDenyList(Arc<RwLock<Arc<DenyList>>>);

impl SharedDenyList {
    pub fn new(list: DenyList) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(list))))
    }

    pub fn replace(&self, list: DenyList) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
    }

    pub fn current(&self) -> Arc<DenyList> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_networks_are_refused_and_nothing_else() {
        let list = DenyList::parse(
            "# stuffing wave of 2026-12-01\n198.19.255.7\n198.19.254.0/24  # a whole range\n\n2001:db8::/48\n203.0.113.9/32\n",
        )
        .unwrap();
        assert_eq!(list.len(), 4);
        for blocked in [
            "198.19.255.7",
            "198.19.254.1",
            "198.19.254.255",
            "2001:db8::1",
            "2001:db8:0:ffff::1",
            "203.0.113.9",
            "::ffff:198.19.255.7",
        ] {
            assert!(list.contains(ip(blocked)), "{blocked}");
        }
        for allowed in [
            "198.19.255.8",
            "198.19.253.1",
            "2001:db9::1",
            "203.0.113.10",
        ] {
            assert!(!list.contains(ip(allowed)), "{allowed}");
        }
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        let err = DenyList::parse("198.19.255.7\n198.19.255.300\n").unwrap_err();
        assert_eq!(
            err,
            DenyListError {
                line: 2,
                text: "198.19.255.300".into()
            }
        );
        assert!(DenyList::parse("10.0.0.0/33").is_err());
        assert!(DenyList::parse("example.com").is_err());
    }

    #[test]
    fn a_replaced_list_takes_effect_whole() {
        let shared = SharedDenyList::default();
        assert!(!shared.contains(ip("198.19.255.7")));
        shared.replace(DenyList::parse("198.19.255.7").unwrap());
        assert!(shared.contains(ip("198.19.255.7")));
        shared.replace(DenyList::default());
        assert!(!shared.contains(ip("198.19.255.7")));
    }
}
