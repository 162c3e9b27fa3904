//! IP allow-lists of principals: CIDR blocks a key may be used from.
//!
//! A block is written `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a
//! single host). Host bits must be zero, so `192.0.2.7/24` is refused rather
//! than guessed at. Client addresses are compared in canonical form: an IPv4
//! client reaching an IPv6 socket (`::ffff:192.0.2.7`) matches IPv4 blocks, and
//! IPv4-mapped blocks are refused because they could never match.

use std::fmt;
use std::net::IpAddr;

use crate::db::StoreError;
use crate::error::{Error, Result};

/// Most blocks one allow-list holds.
pub const MAX_ALLOWED_IPS: usize = 32;

/// One CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address; `None` unless it is exactly a
    /// block with its host bits zero.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        if let IpAddr::V6(v6) = addr
            && v6.to_ipv4_mapped().is_some()
        {
            return None;
        }
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok()?
            }
            Some(_) => return None,
        };
        if prefix > max {
            return None;
        }
        let cidr = Self { addr, prefix };
        (cidr.network_of(addr) == Some(addr)).then_some(cidr)
    }

    /// True if `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.network_of(ip.to_canonical()) == Some(self.addr)
    }

    /// `ip` with the block's host bits cleared, if it is of the same family.
    fn network_of(&self, ip: IpAddr) -> Option<IpAddr> {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                Some(IpAddr::V4((u32::from(ip) & mask).into()))
            }
            (IpAddr::V6(_), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                Some(IpAddr::V6((u128::from(ip) & mask).into()))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The blocks a principal's keys may be used from. A principal without one may
/// be used from anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    /// Parses a request's list: 1 to [`MAX_ALLOWED_IPS`] blocks. The error
    /// names the entry by position and never repeats it.
    pub fn parse(entries: &[String]) -> Result<Self> {
        if entries.is_empty() || entries.len() > MAX_ALLOWED_IPS {
            return Err(Error::invalid(
                "invalid_allowed_ips",
                format!(
                    "allowed_ips takes 1 to {MAX_ALLOWED_IPS} CIDR blocks such as 192.0.2.0/24; \
                     use null to allow any address"
                ),
            ));
        }
        let mut blocks: Vec<Cidr> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let block = Cidr::parse(entry.trim()).ok_or_else(|| {
                Error::invalid(
                    "invalid_allowed_ips",
                    format!(
                        "allowed_ips entry {i} is not an IP address or CIDR block with zero host bits, \
                         such as 192.0.2.0/24 or 2001:db8::/48"
                    ),
                )
            })?;
            if !blocks.contains(&block) {
                blocks.push(block);
            }
        }
        Ok(Self(blocks))
    }

    /// True if `ip` is inside one of the blocks.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// The blocks as text, for listings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// The stored form: blocks separated by commas.
    pub fn to_db(&self) -> String {
        self.to_strings().join(",")
    }

    /// Reads the stored form back.
    pub fn from_db(text: &str) -> Result<Self, StoreError> {
        text.split(',')
            .map(|block| Cidr::parse(block).ok_or(StoreError::Corrupt("allowed_ips")))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|blocks| {
                if blocks.is_empty() {
                    Err(StoreError::Corrupt("allowed_ips"))
                } else {
                    Ok(Self(blocks))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn blocks_parse_and_match() {
        let block = Cidr::parse("192.0.2.0/24").expect("v4");
        assert!(block.contains(ip("192.0.2.200")));
        assert!(!block.contains(ip("192.0.3.1")));
        assert!(
            block.contains(ip("::ffff:192.0.2.9")),
            "IPv4 client on an IPv6 socket"
        );
        assert!(!block.contains(ip("2001:db8::1")));
        let host = Cidr::parse("198.51.100.7").expect("bare address");
        assert_eq!(host.to_string(), "198.51.100.7/32");
        assert!(host.contains(ip("198.51.100.7")) && !host.contains(ip("198.51.100.8")));
        let v6 = Cidr::parse("2001:db8:abcd::/48").expect("v6");
        assert!(v6.contains(ip("2001:db8:abcd:1::5")));
        assert!(!v6.contains(ip("2001:db8:abce::1")));
        let all = Cidr::parse("0.0.0.0/0").expect("all v4");
        assert!(all.contains(ip("203.0.113.1")));
        assert!(Cidr::parse("::/0").expect("all v6").contains(ip("2001:db8::1")));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in [
            "",
            "192.0.2.0/",
            "192.0.2.0/33",
            "192.0.2.7/24",
            "192.0.2.0/+24",
            "192.0.2.0/0024",
            "192.0.2",
            "2001:db8::/129",
            "2001:db8::1/64",
            "::ffff:192.0.2.0/120",
            "example.com",
            "4111111111111111",
        ] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn lists_are_bounded_and_errors_never_echo() {
        let list = AllowList::parse(&[
            "192.0.2.0/24".into(),
            " 192.0.2.0/24 ".into(),
            "2001:db8::/32".into(),
        ])
        .expect("list");
        assert_eq!(list.to_strings(), ["192.0.2.0/24", "2001:db8::/32"]);
        assert_eq!(AllowList::from_db(&list.to_db()).expect("round trip"), list);
        assert!(list.allows(ip("192.0.2.1")) && !list.allows(ip("198.51.100.1")));
        assert!(AllowList::parse(&[]).is_err());
        let many: Vec<String> = (0..=MAX_ALLOWED_IPS).map(|i| format!("10.0.{i}.0/24")).collect();
        assert!(AllowList::parse(&many).is_err());
        let err = AllowList::parse(&["192.0.2.0/24".into(), "4111111111111111".into()]).expect_err("bad");
        assert_eq!(err.code(), "invalid_allowed_ips");
        assert!(err.message().contains("entry 1") && !err.message().contains("4111"));
        assert!(AllowList::from_db("").is_err() && AllowList::from_db("x").is_err());
    }
}
