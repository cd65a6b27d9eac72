//! Whose address a request counts against: rate limits and events need the
//! end user's, not the load balancer's, and must not take a client's word
//! for it. One rule, for the API and the pages alike.
//!
//! The hops are the `X-Forwarded-For` entries, left to right, followed by
//! the socket peer. Walking from the right, each hop in `--trusted-proxies`
//! is skipped (a trusted proxy appends the address it saw); the first hop
//! that is not trusted is the client. A hop that is not an address ends
//! the walk too: the client is then the trusted proxy that wrote it. When
//! every hop is trusted (the API tier, through trusted proxies), the login
//! body's `ip` is believed if there is one, else the left-most hop is the
//! client. Entries left of the first untrusted hop are the client's own
//! words and never read.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Where one request came from, as far as the trusted proxies vouch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The first untrusted hop, or the left-most one when all are trusted.
    ip: IpAddr,
    /// Every hop is a trusted proxy: the caller may name the client.
    all_trusted: bool,
}

impl ClientAddr {
    /// Walks the hops of a request from `peer` with `headers`.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        let mut nearest = peer.to_canonical();
        if !is_trusted(&nearest) {
            return Self::untrusted(nearest);
        }
        // Right to left, without collecting: a long header costs no memory.
        let forwarded = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .rev()
            .flat_map(|value| match value.to_str() {
                Ok(list) => Hops::List(list.rsplit(',')),
                Err(_) => Hops::Garbage(Some("")),
            });
        for hop in forwarded {
            match parse_hop(hop) {
                Some(ip) if is_trusted(&ip) => nearest = ip,
                Some(ip) => return Self::untrusted(ip),
                // Not an address: whoever is behind it is unknown, so the
                // proxy that wrote it counts as the client.
                None => return Self::untrusted(nearest),
            }
        }
        Self {
            ip: nearest,
            all_trusted: true,
        }
    }

    fn untrusted(ip: IpAddr) -> Self {
        Self {
            ip,
            all_trusted: false,
        }
    }

    /// The client's address, for requests without a claim of their own.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The client's address when the request names one (the login body's
    /// `ip`): believed only if every hop is trusted.
    pub fn with_claim(&self, claimed: Option<IpAddr>) -> IpAddr {
        match claimed {
            Some(ip) if self.all_trusted => ip.to_canonical(),
            _ => self.ip,
        }
    }
}

/// The entries of one header value, right to left; a value that is not
/// text is one entry that is not an address.
enum Hops<'a> {
    List(std::str::RSplit<'a, char>),
    Garbage(Option<&'a str>),
}

impl<'a> Iterator for Hops<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        match self {
            Hops::List(entries) => entries.next(),
            Hops::Garbage(entry) => entry.take(),
        }
    }
}

/// One entry: an address, also with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:443`) as some balancers write it. IPv4-mapped IPv6
/// (`::ffff:192.0.2.1`, what a dual-stack socket reports) is the IPv4
/// address, so that it meets IPv4 CIDRs and per-address limits.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else if let Some(rest) = entry.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port(after.strip_prefix(':')?)) {
            return None;
        }
        IpAddr::V6(addr.parse().ok()?)
    } else {
        let (addr, port) = entry.split_once(':')?;
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(addr.parse().ok()?)
    };
    Some(ip.to_canonical())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// HAProxy (`option forwardfor`) in 10.0.0.0/8 in front of sesame; the
    /// API tier in 192.168.0.0/16.
    fn trusted() -> Vec<IpNet> {
        ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect()
    }

    fn headers(xff: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for value in xff {
            h.append(X_FORWARDED_FOR, HeaderValue::from_bytes(value).unwrap());
        }
        h
    }

    fn resolve(peer: &str, xff: &[&str]) -> ClientAddr {
        let xff: Vec<&[u8]> = xff.iter().map(|s| s.as_bytes()).collect();
        ClientAddr::resolve(peer.parse().unwrap(), &headers(&xff), &trusted())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const CLAIM: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9)));

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        // A browser straight to sesame, spoofing the header and the body.
        let addr = resolve("198.51.100.7", &["10.0.0.1", "203.0.113.9"]);
        assert_eq!(addr.ip(), ip("198.51.100.7"));
        assert_eq!(addr.with_claim(CLAIM), ip("198.51.100.7"));
        // No header at all: the same.
        assert_eq!(
            resolve("198.51.100.7", &[]).with_claim(CLAIM),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_the_balancer_the_hop_it_saw_is_the_client() {
        let addr = resolve("10.0.0.2", &["198.51.100.7"]);
        assert_eq!(addr.ip(), ip("198.51.100.7"));
        // A browser cannot name itself, in the header or in the body.
        let spoofed = resolve("10.0.0.2", &["192.168.1.1, 203.0.113.50, 198.51.100.7"]);
        assert_eq!(spoofed.ip(), ip("198.51.100.7"));
        assert_eq!(spoofed.with_claim(CLAIM), ip("198.51.100.7"));
        // Two balancers, and the header split over two lines.
        let two = resolve("10.0.0.2", &["203.0.113.50, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(two.ip(), ip("198.51.100.7"));
    }

    #[test]
    fn the_api_tier_through_trusted_hops_may_name_the_client() {
        // API tier -> HAProxy -> sesame.
        let addr = resolve("10.0.0.2", &["192.168.4.4"]);
        assert_eq!(addr.with_claim(CLAIM), ip("203.0.113.9"));
        // Without a claim the left-most hop counts.
        assert_eq!(addr.with_claim(None), ip("192.168.4.4"));
        assert_eq!(addr.ip(), ip("192.168.4.4"));
        // The API tier straight to sesame.
        assert_eq!(
            resolve("192.168.4.4", &[]).with_claim(CLAIM),
            ip("203.0.113.9")
        );
        // The claim itself in mapped form is the IPv4 address.
        let mapped = Some(ip("::ffff:203.0.113.9"));
        assert_eq!(
            resolve("192.168.4.4", &[]).with_claim(mapped),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn garbage_entries_end_the_walk_at_the_proxy_that_wrote_them() {
        for garbage in [
            "unknown",
            "",
            " ",
            "_hidden",
            "1.2.3",
            "1.2.3.4:port",
            "1.2.3.4:123456",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "2001:db8::1:80:90:100:110:120:130",
            "' OR 1=1 --",
        ] {
            let addr = resolve("10.0.0.2", &[&format!("203.0.113.9, {garbage}")]);
            assert_eq!(addr.ip(), ip("10.0.0.2"), "{garbage:?}");
            assert_eq!(addr.with_claim(CLAIM), ip("10.0.0.2"), "{garbage:?}");
            // Behind a second trusted hop, that hop.
            let deeper = resolve("10.0.0.2", &[&format!("{garbage}, 10.0.0.9")]);
            assert_eq!(deeper.ip(), ip("10.0.0.9"), "{garbage:?}");
        }
        // A value that is not even text.
        let raw = headers(&[b"203.0.113.9, \xff\xfe"]);
        let addr = ClientAddr::resolve(ip("10.0.0.2"), &raw, &trusted());
        assert_eq!(addr.ip(), ip("10.0.0.2"));
        assert_eq!(addr.with_claim(CLAIM), ip("10.0.0.2"));
        // An empty trailing entry (`a,`) from an untrusted client never matters.
        assert_eq!(
            resolve("198.51.100.7", &["1.1.1.1,"]).ip(),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ports_and_ipv6() {
        assert_eq!(
            resolve("10.0.0.2", &["198.51.100.7:4711"]).ip(),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve("10.0.0.2", &["[2001:db8::7]:443"]).ip(),
            ip("2001:db8::7")
        );
        assert_eq!(
            resolve("10.0.0.2", &["[2001:db8::7]"]).ip(),
            ip("2001:db8::7")
        );
        assert_eq!(
            resolve("10.0.0.2", &[" 2001:db8::7 "]).ip(),
            ip("2001:db8::7")
        );
        // IPv6 balancers, trusted by their own prefix.
        assert_eq!(
            resolve("fd00::2", &["2001:db8::7, fd00::3"]).ip(),
            ip("2001:db8::7")
        );
        assert_eq!(
            resolve("2001:db8::2", &["198.51.100.7"]).ip(),
            ip("2001:db8::2")
        );
        // A dual-stack socket reports IPv4 peers mapped: still the balancer.
        let mapped = resolve("::ffff:10.0.0.2", &["198.51.100.7"]);
        assert_eq!(mapped.ip(), ip("198.51.100.7"));
        let direct = resolve("::ffff:198.51.100.7", &["10.0.0.1"]);
        assert_eq!(direct.ip(), ip("198.51.100.7"), "recorded as IPv4");
        assert_eq!(
            resolve("10.0.0.2", &["::ffff:198.51.100.7"]).ip(),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn many_hops() {
        // A thousand trusted hops: still walked to the end, then the left-most.
        let chain = vec!["10.9.9.9"; 1000].join(", ");
        let all = resolve("10.0.0.2", &[&format!("192.168.0.1, {chain}")]);
        assert_eq!(all.ip(), ip("192.168.0.1"));
        assert_eq!(all.with_claim(CLAIM), ip("203.0.113.9"));
        // A thousand entries a client wrote: only the nearest untrusted counts.
        let forged = vec!["192.168.0.1"; 1000].join(",");
        let addr = resolve("10.0.0.2", &[&forged, "198.51.100.7"]);
        assert_eq!(addr.ip(), ip("198.51.100.7"));
        assert_eq!(addr.with_claim(CLAIM), ip("198.51.100.7"));
    }

    #[test]
    fn no_trusted_proxies_means_the_peer() {
        let h = headers(&[b"192.168.4.4"]);
        let addr = ClientAddr::resolve(ip("10.0.0.2"), &h, &[]);
        assert_eq!(addr.with_claim(CLAIM), ip("10.0.0.2"));
    }
}
