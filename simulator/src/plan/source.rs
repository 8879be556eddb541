//! Source addresses for listener sockets: `--source-ips 127.0.0.2-127.0.0.9` (a range)
//! or `127.0.0.2,127.0.0.5` (a list), loopback only. The kernel allows about 28k
//! ephemeral ports per (source, destination) pair; binding connections round-robin to
//! several 127.0.0.x source addresses lifts that ceiling on one machine. Also the slice
//! of the list each `--agents` process gets.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Serialize, Serializer};

/// A range may hold at most this many addresses (a /16 of loopback).
const MAX_ADDRESSES: u32 = 1 << 16;

/// Why a `--source-ips` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceIpsError {
    #[error("--source-ips {value:?}: {item:?} is not an IPv4 address")]
    NotAnAddress { value: String, item: String },
    #[error(
        "--source-ips {value:?}: {addr} is not a loopback address; load tests bind sources in 127.0.0.0/8 only \
         (e.g. 127.0.0.2-127.0.0.9)"
    )]
    NotLoopback { value: String, addr: Ipv4Addr },
    #[error(
        "--source-ips {value:?}: the range {from}-{to} runs backwards or holds more than {MAX_ADDRESSES} addresses"
    )]
    BadRange { value: String, from: Ipv4Addr, to: Ipv4Addr },
    #[error("--source-ips is empty")]
    Empty,
}

/// Loopback source addresses, used round-robin; empty = the kernel's choice.
#[derive(Debug, Default)]
pub struct SourceIps {
    addrs: Vec<Ipv4Addr>,
    next: AtomicUsize,
}

impl Clone for SourceIps {
    fn clone(&self) -> Self {
        Self::new(self.addrs.clone())
    }
}

impl PartialEq for SourceIps {
    fn eq(&self, other: &Self) -> bool {
        self.addrs == other.addrs
    }
}

impl Serialize for SourceIps {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.addrs.serialize(s)
    }
}

impl fmt::Display for SourceIps {
    /// As a comma list (what `--source-ips` reads back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(","))
    }
}

impl SourceIps {
    pub fn new(addrs: Vec<Ipv4Addr>) -> Self {
        Self { addrs, next: AtomicUsize::new(0) }
    }

    /// Parses `a.b.c.d-e.f.g.h` and/or comma lists of addresses and ranges.
    pub fn parse(value: &str) -> Result<Self, SourceIpsError> {
        let mut addrs = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let addr = |text: &str| -> Result<Ipv4Addr, SourceIpsError> {
                let addr: Ipv4Addr = text.trim().parse().map_err(|_| SourceIpsError::NotAnAddress {
                    value: value.to_owned(),
                    item: text.trim().to_owned(),
                })?;
                if !addr.is_loopback() {
                    return Err(SourceIpsError::NotLoopback { value: value.to_owned(), addr });
                }
                Ok(addr)
            };
            match item.split_once('-') {
                None => addrs.push(addr(item)?),
                Some((from, to)) => {
                    let (from, to) = (addr(from)?, addr(to)?);
                    let (a, b) = (u32::from(from), u32::from(to));
                    if b < a || b - a >= MAX_ADDRESSES {
                        return Err(SourceIpsError::BadRange { value: value.to_owned(), from, to });
                    }
                    addrs.extend((a..=b).map(Ipv4Addr::from));
                }
            }
        }
        if addrs.is_empty() {
            return Err(SourceIpsError::Empty);
        }
        Ok(Self::new(addrs))
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.addrs
    }

    /// The next address round-robin, or `None` (kernel's choice) when there are none.
    pub fn next(&self) -> Option<Ipv4Addr> {
        if self.addrs.is_empty() {
            return None;
        }
        Some(self.addrs[self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len()])
    }

    /// Agent `index` of `count`'s share: a contiguous slice, as even as possible; when
    /// there are fewer addresses than agents, agents share them round-robin. Without
    /// any addresses, agent `i` gets 127.0.0.(2+i).
    pub fn share(&self, index: u32, count: u32) -> SourceIps {
        let (i, k) = (index as usize, count.max(1) as usize);
        if self.addrs.is_empty() {
            return Self::new(vec![Ipv4Addr::new(127, 0, 0, 2u8.saturating_add(u8::try_from(index).unwrap_or(253)))]);
        }
        if self.addrs.len() < k {
            return Self::new(vec![self.addrs[i % self.addrs.len()]]);
        }
        let range = crate::plan::share_range(self.addrs.len() as u64, index, count);
        Self::new(self.addrs[range.start as usize..range.end as usize].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists_parse_and_rotate() {
        let ips = SourceIps::parse("127.0.0.2-127.0.0.4, 127.0.1.1").unwrap();
        assert_eq!(ips.to_string(), "127.0.0.2,127.0.0.3,127.0.0.4,127.0.1.1");
        let order: Vec<_> = (0..5).map(|_| ips.next().unwrap().to_string()).collect();
        assert_eq!(order, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1", "127.0.0.2"]);
        assert_eq!(SourceIps::default().next(), None);
    }

    #[test]
    fn only_loopback_is_accepted() {
        let err = SourceIps::parse("127.0.0.2,10.0.0.1").unwrap_err();
        assert!(matches!(err, SourceIpsError::NotLoopback { .. }), "{err:?}");
        assert!(err.to_string().contains("10.0.0.1 is not a loopback address"), "{err}");
        assert!(matches!(SourceIps::parse("127.0.0.9-127.0.0.2"), Err(SourceIpsError::BadRange { .. })));
        assert!(matches!(SourceIps::parse("localhost"), Err(SourceIpsError::NotAnAddress { .. })));
        assert_eq!(SourceIps::parse(" , "), Err(SourceIpsError::Empty));
    }

    #[test]
    fn agents_get_disjoint_slices() {
        let ips = SourceIps::parse("127.0.0.2-127.0.0.8").unwrap();
        let shares: Vec<String> = (0..3).map(|i| ips.share(i, 3).to_string()).collect();
        assert_eq!(shares, ["127.0.0.2,127.0.0.3,127.0.0.4", "127.0.0.5,127.0.0.6", "127.0.0.7,127.0.0.8"]);
        assert_eq!(SourceIps::default().share(1, 2).to_string(), "127.0.0.3");
        assert_eq!(SourceIps::parse("127.0.0.5").unwrap().share(1, 2).to_string(), "127.0.0.5");
    }
}
