//! Decoder and pool-scan tests on mock memory: one world per layout family, every field compared
//! with what was planted; decoys rejected; chunk edges; thread-count determinism; calibration.
mod support;

use netcarve::profile::{by_name, Confidence, Off, Profile};
use netcarve::record::{flag, Family};
use support::world::*;
use support::{reference_dir, Rng};

fn win10() -> Profile {
    by_name("win10-19041-x64").expect("built-in").clone()
}

/// Plants the common mix at page-aligned slots starting at `first_page`; returns the next page.
fn plant_mix(w: &mut World, first_page: u64, with_time_wait: bool) -> u64 {
    let mut page = first_page;
    let mut next = || {
        page += 1;
        (page - 1) * 0x1000 + 0x40
    };
    let specs = vec![
        Spec::tcp("10.0.0.5", 49723, "93.184.216.34", 443),
        Spec::tcp("fe80::1c2b:3a4d:5e6f:7081", 50000, "2001:db8::443", 8443),
        Spec {
            state: 2,
            owner: None,
            ..Spec::tcp("192.168.1.20", 51000, "10.1.1.1", 3389)
        },
        Spec {
            freed: true,
            state: 13,
            ..Spec::tcp("10.0.0.5", 49800, "8.8.8.8", 53)
        },
        Spec::listener(Family::Ipv4, Some("10.0.0.5"), 445),
        Spec::listener(Family::Ipv4, None, 135),
        Spec::listener(Family::Ipv6, None, 445),
        Spec {
            create_time: 0,
            ..Spec::listener(Family::Ipv6, Some("::1"), 5357)
        },
        Spec::udp(Family::Ipv4, None, 5353),
        Spec::udp(Family::Ipv6, None, 5355),
        Spec {
            create_time: ACQUISITION + 10_000_000,
            ..Spec::udp(Family::Ipv4, Some("127.0.0.1"), 1900)
        },
        Spec::udp(Family::Ipv6, Some("2001:db8::5"), 500),
    ];
    for s in specs {
        let pa = next();
        w.plant(pa, &s);
    }
    if with_time_wait {
        let pa = next();
        w.plant(pa, &Spec::time_wait("10.0.0.5", 49700, "93.184.216.34", 80));
        let pa = next();
        w.plant(
            pa,
            &Spec::time_wait("2001:db8::5", 49701, "2001:db8::80", 80),
        );
    }
    page
}

fn check_family(profile: Profile, with_time_wait: bool) {
    let mut w = World::new(profile, 1 << 20);
    plant_mix(&mut w, 3, with_time_wait);
    let carved = w.carve(false);
    assert_eq!(carved.endpoints, w.expected_sorted());
    assert!(carved.calibration.is_empty(), "{:?}", carved.calibration);
    let dual: Vec<_> = carved.endpoints.iter().filter(|r| r.dual_stack).collect();
    assert_eq!(dual.len(), 2, "one record per IPv6 wildcard TcpL/UdpA");
}

#[test]
fn win10_19041_x64_every_field() {
    check_family(win10(), true);
}

#[test]
fn win7_x64_every_field_and_no_time_field() {
    let Some(r) = reference_dir() else { return };
    let p = profile_from_reference(&r, "win7-x64", "7601");
    assert!(p.tcpip.tcp_endpoint.create_time.off().is_none());
    let mut w = World::new(p, 1 << 20);
    plant_mix(&mut w, 3, false);
    let carved = w.carve(false);
    assert_eq!(carved.endpoints, w.expected_sorted());
    let tcpe: Vec<_> = carved
        .endpoints
        .iter()
        .filter(|r| r.tag == "TcpE")
        .collect();
    assert!(tcpe
        .iter()
        .all(|r| r.has_flag(flag::NO_TIME_FIELD) && r.create_time_raw.is_none()));
}

#[test]
fn win7_x86_every_field() {
    let Some(r) = reference_dir() else { return };
    check_family(profile_from_reference(&r, "win7-x86", "7601"), false);
}

#[test]
fn win11_ttcb_every_field() {
    let Some(r) = reference_dir() else { return };
    let p = profile_from_reference(&r, "win10-20348-x64", "20348");
    assert!(p.tcpip.tcp_endpoint.tags.iter().any(|t| t == "TTcb"));
    let mut w = World::new(p, 1 << 20);
    w.plant(
        0x5000,
        &Spec {
            tag: "TTcb",
            ..Spec::tcp("10.0.0.7", 50123, "20.190.1.1", 443)
        },
    );
    w.plant(0x6000, &Spec::tcp("10.0.0.7", 50124, "20.190.1.2", 443));
    let carved = w.carve(false);
    assert_eq!(carved.endpoints, w.expected_sorted());
    assert_eq!(carved.endpoints[0].tag, "TTcb");
}

/// Every decoy kind of docs/internals.md, next to one real object.
#[test]
fn decoys_are_rejected_and_shown_with_include_corrupt() {
    let mut w = World::new(win10(), 1 << 20);
    let real = w.plant(0x2000, &Spec::tcp("10.0.0.5", 1000, "10.0.0.6", 2000));
    let block = w.block_size("TcpE");
    // Tag bytes in random data: filler with tags sprinkled at aligned and unaligned positions.
    let mut rng = Rng::new(7);
    let mut filler = vec![0u8; 0x4000];
    rng.fill(&mut filler);
    w.phys[0x10000..0x14000].copy_from_slice(&filler);
    for i in 0..64u64 {
        let pa = 0x10000 + i * 0x100 + (i % 3) * 4;
        let at = pa as usize + 4;
        w.phys[at..at + 4].copy_from_slice(b"UdpA");
        // BlockSize 0 keeps the random header from passing by chance.
        w.phys[pa as usize + 2] = 0;
    }
    // Unaligned header (tag at +8 from an aligned header slot).
    w.header(0x3008, block, 2, 1, "TcpE");
    // Paged pool.
    let paged = w.plant(0x4000, &Spec::tcp("10.0.0.5", 1001, "10.0.0.6", 2001));
    w.header(0x4000, block, 3, 1, "TcpE");
    // Undersized block.
    let small = w.plant(0x5000, &Spec::tcp("10.0.0.5", 1002, "10.0.0.6", 2002));
    w.header(0x5000, block - 0x100, 2, 1, "TcpE");
    // State 10 and 11 are not kernel states.
    let bad_state = w.plant(
        0x6000,
        &Spec {
            state: 10,
            ..Spec::tcp("10.0.0.5", 1003, "10.0.0.6", 2003)
        },
    );
    // Address family 10 (Linux AF_INET6) is not a Windows family.
    let bad_af = w.plant(0x7000, &Spec::tcp("10.0.0.5", 1004, "10.0.0.6", 2004));
    let af_ptr_off = w.profile.tcpip.tcp_endpoint.inet_af.off().unwrap() as usize;
    let bogus_af = w.inetaf(10);
    let at = 0x7010 + af_ptr_off;
    w.phys[at..at + 8].copy_from_slice(&bogus_af.to_le_bytes());

    let carved = w.carve(false);
    assert_eq!(carved.endpoints, vec![real.clone()]);
    assert!(carved.corrupt.is_empty());

    let with_corrupt = w.carve(true);
    assert_eq!(with_corrupt.endpoints, vec![real]);
    let reason_at = |pa: u64| {
        with_corrupt
            .corrupt
            .iter()
            .find(|r| r.physical_offset.0 == pa)
            .and_then(|r| r.reason.clone())
            .unwrap_or_else(|| panic!("no corrupt row at {pa:#x}"))
    };
    assert!(reason_at(paged.physical_offset.0).contains("paged"));
    assert!(reason_at(small.physical_offset.0).contains("too small"));
    assert!(reason_at(bad_state.physical_offset.0).contains("state 10"));
    assert!(reason_at(bad_af.physical_offset.0).contains("0xa"));
    assert!(
        with_corrupt
            .corrupt
            .iter()
            .all(|r| r.physical_offset.0 % 16 == 0),
        "unaligned headers are never examined"
    );
}

#[test]
fn chunk_edge_objects_found_exactly_once() {
    let mut w = World::new(win10(), 1 << 20);
    let chunk = 0x10000u64;
    let block = w.block_size("UdpA");
    // Last block of a chunk (ends exactly at the edge) and first header of the next chunk.
    w.plant(chunk - block, &Spec::udp(Family::Ipv4, None, 1));
    w.plant(chunk, &Spec::udp(Family::Ipv4, None, 2));
    w.plant(2 * chunk - 0x1000, &Spec::udp(Family::Ipv4, None, 3));
    w.plant(
        w.phys.len() as u64 - block,
        &Spec::udp(Family::Ipv4, None, 4),
    );
    for size in [0x1000, chunk, 3 * chunk, 1 << 40] {
        let carved = w.carve_with(&w.profile, false, size);
        assert_eq!(
            carved.endpoints,
            w.expected_sorted(),
            "chunk size {size:#x}"
        );
    }
}

#[test]
fn output_is_the_same_for_any_thread_count() {
    let mut w = World::new(win10(), 4 << 20);
    let mut page = 1;
    for i in 0..40u64 {
        page = plant_mix(&mut w, page, i % 2 == 0);
    }
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| w.carve_with(&w.profile, true, 0x1000))
    };
    let one = run(1);
    let four = run(4);
    assert_eq!(one.endpoints, four.endpoints);
    assert_eq!(one.corrupt, four.corrupt);
    assert_eq!(one.endpoints, w.expected_sorted());
}

/// A layout whose owner and create-time offsets differ from the profile used to read it.
fn shifted(p: &Profile, by: u32) -> Profile {
    let mut s = p.clone();
    let t = &mut s.tcpip;
    for f in [
        &mut t.tcp_endpoint.owner,
        &mut t.tcp_endpoint.create_time,
        &mut t.tcp_listener.owner,
        &mut t.tcp_listener.create_time,
        &mut t.udp_endpoint.owner,
        &mut t.udp_endpoint.create_time,
    ] {
        f.offset = f.offset.map(|o| Off(o.0 + by));
    }
    t.tcp_endpoint.min_size = Off(t.tcp_endpoint.min_size.0 + by);
    t.tcp_listener.min_size = Off(t.tcp_listener.min_size.0 + by);
    t.udp_endpoint.min_size = Off(t.udp_endpoint.min_size.0 + by);
    s
}

#[test]
fn self_calibration_recovers_a_shifted_layout() {
    let base = win10();
    let mut w = World::new(shifted(&base, 0x28), 1 << 20);
    plant_mix(&mut w, 3, false);
    let carved = w.carve_with(&base, false, 0x10000);
    let mut expected = w.expected_sorted();
    for r in &mut expected {
        r.flags.push(flag::CALIBRATED.into());
        r.flags.sort();
    }
    assert_eq!(carved.endpoints, expected);
    let fields: Vec<(String, String, String)> = carved
        .calibration
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["field"].as_str().unwrap().to_string(),
                e["calibrated_offset"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let t = &base.tcpip;
    let want = |kind: &str, field: &str, off: Option<Off>| {
        (
            kind.to_string(),
            field.to_string(),
            format!("{:#x}", off.unwrap().0 + 0x28),
        )
    };
    for w in [
        want("tcp_endpoint", "owner", t.tcp_endpoint.owner.offset),
        want(
            "tcp_endpoint",
            "create_time",
            t.tcp_endpoint.create_time.offset,
        ),
        want("tcp_listener", "owner", t.tcp_listener.owner.offset),
        want(
            "tcp_listener",
            "create_time",
            t.tcp_listener.create_time.offset,
        ),
        want("udp_endpoint", "owner", t.udp_endpoint.owner.offset),
        want(
            "udp_endpoint",
            "create_time",
            t.udp_endpoint.create_time.offset,
        ),
    ] {
        assert!(fields.contains(&w), "missing {w:?} in {fields:?}");
    }
}

#[test]
fn inferred_profile_is_confirmed_not_changed() {
    let mut p = win10();
    p.confidence = Confidence::Inferred;
    let mut w = World::new(p.clone(), 1 << 20);
    plant_mix(&mut w, 3, false);
    let carved = w.carve(false);
    assert_eq!(carved.endpoints, w.expected_sorted());
    assert!(!carved.calibration.is_empty());
    assert!(carved
        .calibration
        .iter()
        .all(|e| e["used"] == false && e["calibrated_offset"] == e["profile_offset"]));
}

#[test]
fn profile_alternatives_are_tried_and_reported() {
    let base = win10();
    let layout = shifted(&base, 0x10);
    let mut w = World::new(layout.clone(), 1 << 20);
    w.plant(0x3000, &Spec::tcp("10.0.0.5", 1, "10.0.0.6", 2));
    w.plant(0x4000, &Spec::tcp("10.0.0.5", 3, "10.0.0.6", 4));
    // The reading profile names the right offsets only as alternatives.
    let mut reader = base.clone();
    reader.tcpip.tcp_endpoint.owner.alternatives =
        vec![layout.tcpip.tcp_endpoint.owner.offset.unwrap()];
    reader.tcpip.tcp_endpoint.create_time.alternatives =
        vec![layout.tcpip.tcp_endpoint.create_time.offset.unwrap()];
    let carved = w.carve_with(&reader, false, 0x10000);
    assert_eq!(carved.endpoints, w.expected_sorted());
    let methods: Vec<&str> = carved
        .calibration
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, vec!["profile-alternative", "profile-alternative"]);
}

/// A header whose first bytes end one run and whose tag starts the next (runs stored apart in the
/// file) is still found once, through the physical space.
#[test]
fn header_split_across_runs_is_found() {
    use netcarve::carve::{carve, CarveParams};
    use netcarve::container::{Backing, PhysicalSpace, Run};
    use netcarve::filetime::TimeWindow;
    use netcarve::paging::PagingMode;
    let mut w = World::new(win10(), 0x10000);
    w.plant(0x2000, &Spec::udp(Family::Ipv4, None, 7));
    w.plant(0x5000, &Spec::udp(Family::Ipv4, None, 8));
    let split = 0x2004usize;
    let gap = 0x1000usize;
    let mut file = w.phys[..split].to_vec();
    file.extend(std::iter::repeat_n(0xAAu8, gap));
    file.extend_from_slice(&w.phys[split..]);
    let runs = vec![
        Run {
            phys: 0,
            len: split as u64,
            file_offset: 0,
        },
        Run {
            phys: split as u64,
            len: (w.phys.len() - split) as u64,
            file_offset: (split + gap) as u64,
        },
    ];
    let phys = PhysicalSpace::new(
        Backing::Owned(file),
        runs,
        "raw",
        std::path::Path::new("split.raw"),
    )
    .unwrap();
    assert_eq!(phys.runs().len(), 2);
    for chunk in [0x1000, 0x10000] {
        let carved = carve(
            &phys,
            &CarveParams {
                profile: &w.profile,
                mem: &w.mem,
                mode: PagingMode::X64,
                times: TimeWindow {
                    boot: Some(BOOT),
                    acquisition: Some(ACQUISITION),
                },
                include_corrupt: false,
                chunk_size: chunk,
                progress: None,
                kernel_space: None,
                block_tags: &[],
            },
        );
        assert_eq!(carved.endpoints, w.expected_sorted(), "chunk {chunk:#x}");
    }
}

/// Hostile bytes never panic: planted objects with random bytes flipped, headers included, and
/// pages of random data sprinkled with tags, decoded with every mix of include_corrupt.
#[test]
fn mutated_objects_never_panic() {
    for seed in 0..20u64 {
        let mut w = World::new(win10(), 1 << 18);
        let page = plant_mix(&mut w, 1, true);
        let mut rng = Rng::new(seed);
        let end = (page * 0x1000) as usize;
        for _ in 0..400 {
            let at = (rng.next_u64() as usize) % end;
            w.phys[at] = rng.next_u64() as u8;
        }
        // Corrupt pointed-to memory too.
        for bytes in w.mem.regions.values_mut() {
            if rng.next_u64().is_multiple_of(3) {
                rng.fill(bytes);
            }
        }
        for include_corrupt in [false, true] {
            let carved = w.carve(include_corrupt);
            assert!(carved.endpoints.len() <= w.expected.len() + 64);
        }
    }
}
