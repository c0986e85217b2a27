//! Which addresses an upstream of a tenant's space may resolve to.
//!
//! In hosted mode a tenant's providers say where its apps are, and a provider's listing can
//! name any host: without a check, a tenant could make the engine connect to the engine's
//! own machine, its network, or a cloud metadata service. Those upstreams are checked at
//! connect time, on the addresses DNS gave (so a name that changes its answer does not get
//! around it). This module imports nothing of the crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which addresses an upstream may be at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamScope {
    /// Any (the operator's own spaces).
    #[default]
    Any,
    /// Public addresses only ([`is_internal`] refused): a hosted tenant's space, unless
    /// `hosted.private_upstreams` allows it.
    Public,
}

impl UpstreamScope {
    /// The addresses of `resolved` this scope allows, in order.
    pub fn allowed(self, resolved: impl IntoIterator<Item = SocketAddr>) -> Vec<SocketAddr> {
        resolved
            .into_iter()
            .filter(|address| self == UpstreamScope::Any || !is_internal(address.ip()))
            .collect()
    }
}

/// Whether a tenant's upstream may not be at `ip`: loopback, private, shared (CGNAT),
/// link-local (cloud metadata services live there), unspecified, broadcast, multicast,
/// benchmarking and reserved ranges, unique-local IPv6, and IPv6 forms that embed one of
/// those (IPv4-mapped, NAT64).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., high, low] = segments;
        let v4 = Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
        return is_internal_v4(v4);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (segments[0] & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (segments[0] & 0xffc0) == 0xfe80
        // Site-local (deprecated), fec0::/10.
        || (segments[0] & 0xffc0) == 0xfec0
        // IPv4-compatible (deprecated), ::/96.
        || segments[..6] == [0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_refused_and_public_ones_allowed() {
        for internal in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.0.170",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = internal.parse().expect("ip");
            assert!(is_internal(ip), "{internal} should be internal");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.2.1",
            "2001:db8::1",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = public.parse().expect("ip");
            assert!(!is_internal(ip), "{public} should be allowed");
        }
    }
}
