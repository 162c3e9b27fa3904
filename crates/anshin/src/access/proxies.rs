//! Trusted reverse proxies: whose `X-Forwarded-For` to believe.
//!
//! Behind a reverse proxy every connection comes from the proxy, so lock-outs,
//! allow-lists and the audit log's origin would all see one address. When the
//! connection's peer is a configured proxy, the client is the right-most
//! address of `X-Forwarded-For` that is not itself a trusted proxy: each proxy
//! appends the address it was connected from, so everything further left was
//! written by the client and could be forged. With no proxies configured the
//! header is ignored, so a client cannot choose its own origin.

use std::net::IpAddr;

use super::cidr::Cidr;

/// Most proxy blocks configured.
pub const MAX_TRUSTED_PROXIES: usize = 64;

/// The configured proxies (empty: trust none).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses CIDR blocks or bare addresses; the error names the entry by
    /// position and says what is expected.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        if entries.len() > MAX_TRUSTED_PROXIES {
            return Err(format!(
                "trusted_proxies takes at most {MAX_TRUSTED_PROXIES} blocks"
            ));
        }
        entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                Cidr::parse(entry.as_ref().trim()).ok_or_else(|| {
                    format!(
                        "trusted_proxies entry {i} is not an IP address or CIDR block with zero host bits, \
                         such as 10.0.0.0/8 or 2001:db8::/48"
                    )
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The blocks as text.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// The client's address for a connection from `peer` that carried these
    /// `X-Forwarded-For` header values (in order). An entry that is not an
    /// address ends the walk: the last hop known to be honest is the answer.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.into_iter().flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn proxies(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(blocks).expect("blocks")
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("192.0.2.1"), ["198.51.100.7"]), ip("192.0.2.1"));
        let lb = proxies(&["10.0.0.0/8"]);
        assert_eq!(lb.client(ip("192.0.2.1"), ["198.51.100.7"]), ip("192.0.2.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let lb = proxies(&["10.0.0.0/8", "2001:db8:1::/48"]);
        assert_eq!(lb.client(ip("10.0.0.2"), ["198.51.100.7"]), ip("198.51.100.7"));
        // Two proxies, and a forged entry the client wrote first.
        assert_eq!(
            lb.client(ip("10.0.0.2"), ["203.0.113.66, 198.51.100.7, 10.1.2.3"]),
            ip("198.51.100.7")
        );
        // Repeated headers read as one list.
        assert_eq!(
            lb.client(ip("10.0.0.2"), ["203.0.113.66", "198.51.100.7,10.1.2.3"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            lb.client(ip("2001:db8:1::5"), ["2001:db8:9::1"]),
            ip("2001:db8:9::1")
        );
        assert_eq!(
            lb.client(ip("10.0.0.2"), ["::ffff:198.51.100.7"]),
            ip("198.51.100.7"),
            "IPv4-mapped entries compare as IPv4"
        );
    }

    #[test]
    fn a_garbled_or_missing_header_leaves_the_last_honest_hop() {
        let lb = proxies(&["10.0.0.0/8"]);
        assert_eq!(lb.client(ip("10.0.0.2"), []), ip("10.0.0.2"));
        assert_eq!(lb.client(ip("10.0.0.2"), ["unknown"]), ip("10.0.0.2"));
        assert_eq!(
            lb.client(ip("10.0.0.2"), ["198.51.100.7, garbage, 10.0.0.9"]),
            ip("10.0.0.9")
        );
        // Every hop a proxy: the left-most is as far as the chain goes.
        assert_eq!(lb.client(ip("10.0.0.2"), ["10.0.0.7, 10.0.0.8"]), ip("10.0.0.7"));
    }

    #[test]
    fn bad_blocks_are_refused_without_echo() {
        let err = TrustedProxies::parse(&["10.0.0.0/8", "4111111111111111"]).expect_err("bad");
        assert!(err.contains("entry 1") && !err.contains("4111"), "{err}");
        assert!(TrustedProxies::parse(&vec!["10.0.0.1"; MAX_TRUSTED_PROXIES + 1]).is_err());
    }
}
