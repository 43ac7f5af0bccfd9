//! The scenario every image plays: its clock, its processes by name, the host's addresses and
//! the endpoint specs by group. Each group draws from the one RNG in a fixed order, so the same
//! seed writes the same image.
use super::objects::{family_of, v4, v6, Kind, ProcId, Spec};
use super::rng::Rng;
use crate::filetime::{TICKS_PER_SECOND, UNIX_EPOCH_TICKS};
use crate::profile::Profile;
use crate::record::{Family, TcpState};
use std::net::IpAddr;

pub const SECOND: u64 = TICKS_PER_SECOND as u64;
pub const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// When a process started, which sets its creation time's window.
#[derive(Copy, Clone, PartialEq, Eq)]
pub enum Start {
    /// System, within two seconds of boot.
    Kernel,
    /// Session-0 services, within three minutes.
    Boot,
    /// The user's processes, after logon; their endpoints open at any time before the capture.
    Logon,
}

pub struct ProcessRow {
    pub name: &'static str,
    pub start: Start,
    /// Ran and exited before the capture; its EPROCESS lingers while referenced.
    pub exits: bool,
}

const fn row(name: &'static str, start: Start) -> ProcessRow {
    ProcessRow {
        name,
        start,
        exits: false,
    }
}

const SYSTEM: ProcId = ProcId(0);
const WININIT: ProcId = ProcId(3);
const LSASS: ProcId = ProcId(5);
/// RpcSs: the port-135 listeners.
pub const SVCHOST_RPCSS: ProcId = ProcId(6);
/// NetworkService: mDNS and NTP.
pub const SVCHOST_NETSVC: ProcId = ProcId(7);
/// The DHCPv6 client.
const SVCHOST_DHCP: ProcId = ProcId(8);
const SPOOLSV: ProcId = ProcId(9);
const EXPLORER: ProcId = ProcId(10);
pub const CHROME: ProcId = ProcId(11);
/// Owner of the connection hidden from the API, its backdoor listener and DNS socket.
const EVIL: ProcId = ProcId(12);
const ONEDRIVE: ProcId = ProcId(13);
/// The exited process whose connection is stale.
pub const UPDATER: ProcId = ProcId(14);

/// In `_EPROCESS` list order; the constants above index it.
pub const PROCESSES: [ProcessRow; 15] = [
    row("System", Start::Kernel),
    row("smss.exe", Start::Boot),
    row("csrss.exe", Start::Boot),
    row("wininit.exe", Start::Boot),
    row("services.exe", Start::Boot),
    row("lsass.exe", Start::Boot),
    row("svchost.exe", Start::Boot),
    row("svchost.exe", Start::Boot),
    row("svchost.exe", Start::Boot),
    row("spoolsv.exe", Start::Boot),
    row("explorer.exe", Start::Logon),
    row("chrome.exe", Start::Logon),
    row("evil.exe", Start::Logon),
    row("OneDrive.exe", Start::Logon),
    ProcessRow {
        name: "updater.exe",
        start: Start::Logon,
        exits: true,
    },
];

fn started_at_logon(owner: ProcId) -> bool {
    PROCESSES[owner.0].start == Start::Logon
}

/// Acquisition, boot and capture times (FILETIME ticks, UTC) and the host's UTC offset.
#[derive(Copy, Clone)]
pub struct Clock {
    pub acquired: u64,
    pub uptime: u64,
    pub boot: u64,
    /// When the captures were taken, shortly before acquisition.
    pub capture: u64,
    pub utc_offset_minutes: i64,
}

impl Clock {
    pub fn draw(rng: &mut Rng) -> Clock {
        let base_2023 = (1_672_531_200i128 * i128::from(SECOND as u32) + UNIX_EPOCH_TICKS) as u64;
        let acquired = base_2023 + rng.below(3 * 365 * 24 * HOUR);
        let uptime = rng.range(3 * HOUR, 20 * 24 * HOUR);
        let capture = acquired - rng.range(20 * SECOND, 60 * SECOND);
        let offsets = [-480i64, -300, -240, 0, 60, 120, 330, 540];
        Clock {
            acquired,
            uptime,
            boot: acquired - uptime,
            capture,
            utc_offset_minutes: *rng.pick(&offsets),
        }
    }

    /// Processes started after logon start before this.
    pub fn early(&self) -> u64 {
        self.uptime / 20
    }

    /// When the services open their sockets.
    fn listen(&self) -> u64 {
        self.boot + self.early()
    }

    /// A time after `lo` and at least a second before the capture.
    fn before_capture(&self, rng: &mut Rng, lo: u64) -> u64 {
        lo + rng.range(
            SECOND,
            (self.capture - lo)
                .saturating_sub(2 * SECOND)
                .max(2 * SECOND),
        )
    }
}

/// The host's own addresses and the remote peers it talks to.
struct Network {
    host4: IpAddr,
    host6: IpAddr,
    link6: IpAddr,
    remotes4: [IpAddr; 5],
    remotes6: [IpAddr; 2],
    /// evil.exe's command-and-control server.
    c2: IpAddr,
}

impl Network {
    fn draw(rng: &mut Rng) -> Network {
        let host4 = v4(
            10,
            rng.range(0, 250) as u8,
            rng.range(0, 250) as u8,
            rng.range(2, 250) as u8,
        );
        let host6 = v6([
            0x2001,
            0xdb8,
            rng.below(0xffff) as u16,
            0x10,
            rng.below(0xffff) as u16,
            rng.below(0xffff) as u16,
            rng.below(0xffff) as u16,
            0x5,
        ]);
        let link6 = v6([
            0xfe80,
            0,
            0,
            0,
            rng.below(0xffff) as u16,
            rng.below(0xffff) as u16,
            rng.below(0xffff) as u16,
            rng.below(0xffff) as u16,
        ]);
        Network {
            host4,
            host6,
            link6,
            remotes4: [
                v4(93, 184, 216, 34),
                v4(142, 250, 185, 78),
                v4(52, 96, 165, 12),
                v4(185, 199, 108, 153),
                v4(20, 190, 151, 9),
            ],
            remotes6: [
                v6([0x2606, 0x4700, 0, 0, 0, 0, 0x6810, 0x85e5]),
                v6([0x2a00, 0x1450, 0x4001, 0x82b, 0, 0, 0, 0x200e]),
            ],
            c2: v4(45, 137, rng.range(1, 250) as u8, rng.range(1, 250) as u8),
        }
    }
}

fn listener(family: Family, local: Option<IpAddr>, port: u16, owner: ProcId, t: u64) -> Spec {
    Spec {
        kind: Kind::TcpL,
        family,
        local,
        lport: port,
        remote: None,
        state: None,
        owner: Some(owner),
        create: t,
        freed: false,
    }
}

fn udp(family: Family, local: Option<IpAddr>, port: u16, owner: Option<ProcId>, t: u64) -> Spec {
    Spec {
        kind: Kind::UdpA,
        family,
        local,
        lport: port,
        remote: None,
        state: None,
        owner,
        create: t,
        freed: false,
    }
}

fn connection(
    local: IpAddr,
    port: u16,
    remote: (IpAddr, u16),
    state: TcpState,
    owner: Option<ProcId>,
    t: u64,
) -> Spec {
    Spec {
        kind: Kind::TcpE,
        family: family_of(&local),
        local: Some(local),
        lport: port,
        remote: Some(remote),
        state: Some(state),
        owner,
        create: t,
        freed: false,
    }
}

/// The endpoint specs' shared inputs: the RNG, the clock, the network and the ephemeral port
/// counter. Each group method returns its specs; `plan::build` calls them in the order of the draws.
pub struct Scenario {
    pub rng: Rng,
    pub clock: Clock,
    net: Network,
    ephemeral: u16,
}

impl Scenario {
    pub fn new(mut rng: Rng, clock: Clock) -> Scenario {
        let net = Network::draw(&mut rng);
        let ephemeral = rng.range(49700, 60000) as u16;
        Scenario {
            rng,
            clock,
            net,
            ephemeral,
        }
    }

    /// The next ephemeral port, a few above the last, as Windows hands them out.
    fn next_port(&mut self) -> u16 {
        self.ephemeral = self.ephemeral.wrapping_add(1 + self.rng.below(40) as u16);
        if self.ephemeral < 49152 {
            self.ephemeral = 49152;
        }
        self.ephemeral
    }

    fn before_capture(&mut self) -> u64 {
        let listen = self.clock.listen();
        self.clock.before_capture(&mut self.rng, listen)
    }

    /// Services listen soon after their start; the user's processes any time later.
    fn opened(&mut self, owner: ProcId, within: u64) -> u64 {
        if started_at_logon(owner) {
            self.before_capture()
        } else {
            self.clock.listen() + self.rng.range(SECOND, within)
        }
    }

    /// The first is svchost's :135, whose capture row gets the PID mismatch.
    pub fn listeners(&mut self) -> Vec<Spec> {
        let (v4f, v6f) = (Family::Ipv4, Family::Ipv6);
        let (host4, host6, any6) = (self.net.host4, self.net.host6, v6([0; 8]));
        let table = [
            (v4f, None, 135, SVCHOST_RPCSS),
            (v6f, None, 135, SVCHOST_RPCSS),
            (v4f, Some(host4), 139, SYSTEM),
            (v4f, None, 445, SYSTEM),
            (v6f, None, 445, SYSTEM),
            (v4f, None, 49664, WININIT),
            (v6f, None, 49664, WININIT),
            (v4f, None, 49665, LSASS),
            (v6f, Some(any6), 49665, LSASS),
            (v6f, Some(host6), 49666, SPOOLSV),
            (v4f, None, 4444, EVIL),
        ];
        table
            .into_iter()
            .map(|(family, local, port, owner)| {
                let t = self.opened(owner, 10 * MINUTE);
                listener(family, local, port, owner, t)
            })
            .collect()
    }

    /// The :123 socket's capture row gets the time mismatch.
    pub fn udp_endpoints(&mut self) -> Vec<Spec> {
        let (v4f, v6f) = (Family::Ipv4, Family::Ipv6);
        let (host4, link6) = (self.net.host4, self.net.link6);
        let table = [
            (v4f, None, 5353, SVCHOST_NETSVC),
            (v6f, None, 5353, SVCHOST_NETSVC),
            (v4f, Some(host4), 137, SYSTEM),
            (v4f, Some(host4), 138, SYSTEM),
            (v6f, Some(link6), 546, SVCHOST_DHCP),
            (v4f, None, 123, SVCHOST_NETSVC),
            (v6f, None, 5353, CHROME),
            (v4f, None, 53, EVIL),
        ];
        table
            .into_iter()
            .map(|(family, local, port, owner)| {
                let t = self.opened(owner, 20 * MINUTE);
                udp(family, local, port, Some(owner), t)
            })
            .collect()
    }

    /// A connection in every kernel state (CLOSED and DELETE_TCB ones are stale), every fourth
    /// over IPv6, then `extra` established ones.
    pub fn connections(&mut self, extra: usize) -> Vec<Spec> {
        let states = [
            TcpState::Closed,
            TcpState::SynSent,
            TcpState::SynRcvd,
            TcpState::Established,
            TcpState::FinWait1,
            TcpState::FinWait2,
            TcpState::CloseWait,
            TcpState::Closing,
            TcpState::LastAck,
            TcpState::TimeWait,
            TcpState::DeleteTcb,
            TcpState::Established,
            TcpState::Established,
            TcpState::Established,
        ];
        let owners = [
            CHROME,
            SVCHOST_RPCSS,
            EXPLORER,
            ONEDRIVE,
            CHROME,
            SVCHOST_NETSVC,
            CHROME,
            ONEDRIVE,
        ];
        let mut specs = vec![];
        for (i, state) in states.into_iter().enumerate() {
            let (local, remote) = if i % 4 == 3 {
                (self.net.host6, *self.rng.pick(&self.net.remotes6))
            } else {
                (self.net.host4, *self.rng.pick(&self.net.remotes4))
            };
            let port = self.next_port();
            let remote_port = if i % 5 == 4 { 80 } else { 443 };
            let owner = owners[i % owners.len()];
            let t = self.before_capture();
            specs.push(connection(
                local,
                port,
                (remote, remote_port),
                state,
                Some(owner),
                t,
            ));
        }
        let busy = [SVCHOST_RPCSS, SVCHOST_NETSVC, EXPLORER, CHROME, ONEDRIVE];
        for _ in 0..extra {
            let port = self.next_port();
            let remote = *self.rng.pick(&self.net.remotes4);
            let owner = *self.rng.pick(&busy);
            let t = self.before_capture();
            specs.push(self.established(port, remote, Some(owner), t));
        }
        specs
    }

    fn established(&self, port: u16, remote: IpAddr, owner: Option<ProcId>, t: u64) -> Spec {
        connection(
            self.net.host4,
            port,
            (remote, 443),
            TcpState::Established,
            owner,
            t,
        )
    }

    /// evil.exe's connection to its C2, which the captures leave out.
    pub fn hidden_connection(&mut self) -> Spec {
        let port = self.next_port();
        let t = self.before_capture();
        self.established(port, self.net.c2, Some(EVIL), t)
    }

    /// A connection whose owner has exited (the CLOSED and DELETE_TCB objects of `connections`
    /// are the other kind); the API no longer lists it, and compare must not call it hidden.
    pub fn stale_connection(&mut self) -> Spec {
        let port = self.next_port();
        let t = self.before_capture();
        self.established(port, self.net.remotes4[2], Some(UPDATER), t)
    }

    /// Created between capture and acquisition: informational for compare, which can only tell
    /// when the object carries a time (a UDP endpoint where TcpE has no time field).
    pub fn late_endpoint(&mut self, p: &Profile) -> Spec {
        let port = self.next_port();
        let c = self.clock;
        let t = c.capture
            + self.rng.range(
                SECOND,
                (c.acquired - c.capture)
                    .saturating_sub(SECOND)
                    .max(2 * SECOND),
            );
        if p.tcpip.tcp_endpoint.create_time.off().is_some() {
            self.established(port, self.net.remotes4[0], Some(CHROME), t)
        } else {
            udp(Family::Ipv4, Some(self.net.host4), port, Some(CHROME), t)
        }
    }

    /// TcTW objects, where the profile has the layout.
    pub fn time_wait(&mut self, p: &Profile) -> Vec<Spec> {
        if p.tcpip.time_wait.is_none() {
            return vec![];
        }
        let pairs = [
            (self.net.host4, self.net.remotes4[1]),
            (self.net.host6, self.net.remotes6[0]),
        ];
        pairs
            .into_iter()
            .map(|(local, remote)| {
                let port = self.next_port();
                let t = self.before_capture();
                Spec {
                    kind: Kind::TcTW,
                    ..connection(local, port, (remote, 443), TcpState::TimeWait, None, t)
                }
            })
            .collect()
    }

    /// The record flags scan raises on live objects: an owner pointer that leads to no process
    /// (`no_owner`), a creation time of zero (`zero_time`: its API row shows zero too, the
    /// `kernel_time_zero` cause), and one before boot (`time_out_of_range`: a clock set back).
    pub fn flag_cases(&mut self) -> Vec<Spec> {
        let port = self.next_port();
        let t = self.before_capture();
        let orphan = connection(
            self.net.host4,
            port,
            (self.net.remotes4[4], 443),
            TcpState::CloseWait,
            None,
            t,
        );
        let port = self.next_port();
        let zero_time = udp(Family::Ipv4, Some(self.net.host4), port, Some(SPOOLSV), 0);
        let before_boot = self
            .clock
            .boot
            .saturating_sub(self.rng.range(2 * 24 * HOUR, 40 * 24 * HOUR));
        let early = listener(Family::Ipv4, None, 5985, LSASS, before_boot);
        vec![orphan, zero_time, early]
    }

    /// Freed pool blocks of a connection and a UDP endpoint.
    pub fn freed(&mut self) -> Vec<Spec> {
        let port = self.next_port();
        let t = self.before_capture();
        let tcp = self.established(port, self.net.remotes4[2], Some(CHROME), t);
        let port = self.next_port();
        let t = self.before_capture();
        let udp = udp(
            Family::Ipv4,
            Some(self.net.host4),
            port,
            Some(SVCHOST_NETSVC),
            t,
        );
        [tcp, udp]
            .into_iter()
            .map(|s| Spec { freed: true, ..s })
            .collect()
    }

    /// Profiles with tcpip's tables: evil.exe's second C2 connection, alive (ESTABLISHED, owner
    /// running) but unlinked from every table (DKOM), so neither the API nor a walk sees it.
    pub fn unlinked_connection(&mut self) -> Spec {
        let port = self.next_port();
        let t = self.before_capture();
        connection(
            self.net.host4,
            port,
            (self.net.c2, 8443),
            TcpState::Established,
            Some(EVIL),
            t,
        )
    }

    /// Profiles with tcpip's tables: a live, linked connection whose pool tag gets overwritten,
    /// so that only the walk finds it (the API lists it).
    pub fn tag_overwritten(&mut self) -> Spec {
        let port = self.next_port();
        let t = self.before_capture();
        self.established(port, self.net.remotes4[1], Some(EXPLORER), t)
    }

    /// A connection in the captures that closed before acquisition: `not_in_memory`.
    pub fn closed_after_capture(&mut self) -> (u16, IpAddr, IpAddr, u64) {
        let port = self.next_port();
        let t = self.before_capture();
        (port, self.net.host4, self.net.remotes4[3], t)
    }
}
