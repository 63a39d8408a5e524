//! Networks: parsing, canonical text, containment at the edges, IPv4-mapped IPv6.

use super::*;
use std::net::IpAddr;

fn cidr(s: &str) -> Cidr {
    Cidr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn cidr_canonical_text() {
    for (given, canonical) in [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("192.0.2.7/32", "192.0.2.7/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("2001:DB8::/32", "2001:db8::/32"),
        (
            "2001:0db8:0000:0000:0000:0000:0000:0000/32",
            "2001:db8::/32",
        ),
        ("2001:db8::1", "2001:db8::1/128"),
        ("::/0", "::/0"),
        ("::1", "::1/128"),
        // IPv4-mapped IPv6 networks are IPv4 networks.
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:192.0.2.7", "192.0.2.7/32"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
    ] {
        let c = cidr(given);
        assert_eq!(c.to_string(), canonical, "{given}");
        // The canonical text parses back to the same network.
        assert_eq!(cidr(canonical), c, "{canonical}");
    }
    assert_eq!(cidr("10.0.0.0/8").prefix(), 8);
    assert_eq!(cidr("10.0.0.0/8").network(), ip("10.0.0.0"));
}

#[test]
fn cidr_refuses_host_bits_naming_the_network() {
    for (given, network) in [
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.0.2.1/31", "192.0.2.0/31"),
        ("0.0.0.1/0", "0.0.0.0/0"),
        ("2001:db8::1/64", "2001:db8::/64"),
        ("::1/0", "::/0"),
        ("::ffff:10.1.2.3/104", "10.0.0.0/8"),
    ] {
        let e = Cidr::parse(given).unwrap_err();
        assert_eq!(
            e,
            format!("has host bits set; the network is {network}"),
            "{given}"
        );
    }
}

#[test]
fn cidr_refuses_what_is_not_a_network() {
    for bad in [
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/+8",
        "10.0.0.0/08",
        "10.0.0.0/-1",
        "10.0.0.0/8/8",
        "10.0.0.0/ 8",
        " 10.0.0.0/8",
        "10.0.0/8",
        "010.0.0.0/8",
        "10.0.0.256",
        "2001:db8::/129",
        "2001:db8::/1000",
        "fe80::1%eth0",
        "[::1]",
        "example.com/8",
        "10.0.0.0/8 ",
    ] {
        assert!(Cidr::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        Cidr::parse("10.0.0.0/33").unwrap_err(),
        "the prefix length must be from 0 to 32"
    );
    assert_eq!(
        Cidr::parse("::/129").unwrap_err(),
        "the prefix length must be from 0 to 128"
    );
    // Prefix 0 and the longest prefix are both accepted.
    for ok in ["10.0.0.0/32", "0.0.0.0/0", "::/128", "::/0"] {
        cidr(ok);
    }
}

#[test]
fn cidr_v4_containment_edges() {
    let net = cidr("192.0.2.0/24");
    for inside in ["192.0.2.0", "192.0.2.1", "192.0.2.255"] {
        assert!(net.contains(ip(inside)), "{inside}");
    }
    for outside in ["192.0.1.255", "192.0.3.0", "10.0.0.1", "2001:db8::1", "::"] {
        assert!(!net.contains(ip(outside)), "{outside}");
    }
    let all = cidr("0.0.0.0/0");
    for inside in ["0.0.0.0", "255.255.255.255", "10.1.2.3"] {
        assert!(all.contains(ip(inside)), "{inside}");
    }
    assert!(!all.contains(ip("::1")), "/0 of IPv4 is not IPv6");
    let one = cidr("192.0.2.7/32");
    assert!(one.contains(ip("192.0.2.7")));
    assert!(!one.contains(ip("192.0.2.6")));
    assert!(!one.contains(ip("192.0.2.8")));
    let odd = cidr("10.0.0.0/7"); // 10.0.0.0 – 11.255.255.255
    assert!(odd.contains(ip("11.255.255.255")));
    assert!(!odd.contains(ip("12.0.0.0")));
    assert!(!odd.contains(ip("9.255.255.255")));
}

#[test]
fn cidr_v6_containment_edges() {
    let net = cidr("2001:db8::/32");
    for inside in [
        "2001:db8::",
        "2001:db8::1",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    ] {
        assert!(net.contains(ip(inside)), "{inside}");
    }
    for outside in ["2001:db9::", "2001:db7:ffff::", "10.0.0.1"] {
        assert!(!net.contains(ip(outside)), "{outside}");
    }
    let all = cidr("::/0");
    for inside in [
        "::",
        "::1",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db8::1",
    ] {
        assert!(all.contains(ip(inside)), "{inside}");
    }
    assert!(!all.contains(ip("10.0.0.1")), "/0 of IPv6 is not IPv4");
    let one = cidr("2001:db8::7/128");
    assert!(one.contains(ip("2001:db8::7")));
    assert!(!one.contains(ip("2001:db8::6")));
    assert!(!one.contains(ip("2001:db8::8")));
}

/// `::ffff:a.b.c.d` is the IPv4 address `a.b.c.d`, as an address and as a network; IPv6
/// networks never hold it, not even `::/0`.
#[test]
fn cidr_mapped_ipv6_is_its_ipv4_address() {
    let v4 = cidr("1.2.3.0/24");
    assert!(v4.contains(ip("::ffff:1.2.3.4")));
    assert!(v4.contains(ip("::ffff:102:304")));
    assert!(!v4.contains(ip("::ffff:1.2.4.4")));
    assert!(cidr("1.2.3.4").contains(ip("::ffff:1.2.3.4")));
    assert!(cidr("0.0.0.0/0").contains(ip("::ffff:1.2.3.4")));
    assert!(!cidr("::/0").contains(ip("::ffff:1.2.3.4")));
    // A network written mapped is the IPv4 network, matching either spelling.
    let mapped = cidr("::ffff:1.2.3.0/120");
    assert_eq!(mapped, v4);
    assert!(mapped.contains(ip("1.2.3.4")));
    assert!(mapped.contains(ip("::ffff:1.2.3.4")));
    // IPv4-compatible addresses (`::1.2.3.4`, deprecated) are IPv6 addresses.
    assert!(!v4.contains(ip("::1.2.3.4")));
    assert!(cidr("::/96").contains(ip("::1.2.3.4")));
}
