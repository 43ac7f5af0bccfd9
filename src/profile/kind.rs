//! The endpoint object kinds a profile describes, and where each kind's shared fields are.
use crate::profile::{Field, Profile};
use crate::record::Proto;

/// Which endpoint structure a pool tag stands for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// `_TCP_ENDPOINT` (TcpE, TTcb).
    TcpEndpoint,
    /// `_TCP_LISTENER` (TcpL).
    TcpListener,
    /// `_UDP_ENDPOINT` (UdpA).
    UdpEndpoint,
    /// TIME_WAIT endpoint (TcTW).
    TimeWait,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 4] = [
        ObjectKind::TcpEndpoint,
        ObjectKind::TcpListener,
        ObjectKind::UdpEndpoint,
        ObjectKind::TimeWait,
    ];
    /// The profile's name for the layout (`tcp_endpoint`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::TcpEndpoint => "tcp_endpoint",
            ObjectKind::TcpListener => "tcp_listener",
            ObjectKind::UdpEndpoint => "udp_endpoint",
            ObjectKind::TimeWait => "time_wait",
        }
    }
    pub fn proto(self) -> Proto {
        match self {
            ObjectKind::UdpEndpoint => Proto::Udp,
            _ => Proto::Tcp,
        }
    }
}

/// The fields every kind shares, looked up in the profile.
pub struct KindFields<'a> {
    /// The pool tags objects of this kind carry.
    pub tags: &'a [String],
    /// Body bytes needed to decode every field.
    pub min_size: u64,
    pub inet_af: &'a Field,
    /// `None` for TcTW, which has no owner.
    pub owner: Option<&'a Field>,
    pub create_time: &'a Field,
    /// Where the object starts, counted from the pool body.
    pub body_offset: u64,
}

/// The profile fields of `kind`; `None` when the profile has no layout for it (TcTW on old builds).
pub fn kind_fields(profile: &Profile, kind: ObjectKind) -> Option<KindFields<'_>> {
    let t = &profile.tcpip;
    Some(match kind {
        ObjectKind::TcpEndpoint => KindFields {
            tags: &t.tcp_endpoint.tags,
            min_size: t.tcp_endpoint.min_size.get(),
            inet_af: &t.tcp_endpoint.inet_af,
            owner: Some(&t.tcp_endpoint.owner),
            create_time: &t.tcp_endpoint.create_time,
            body_offset: 0,
        },
        ObjectKind::TcpListener => KindFields {
            tags: &t.tcp_listener.tags,
            min_size: t.tcp_listener.min_size.get(),
            inet_af: &t.tcp_listener.inet_af,
            owner: Some(&t.tcp_listener.owner),
            create_time: &t.tcp_listener.create_time,
            body_offset: 0,
        },
        ObjectKind::UdpEndpoint => KindFields {
            tags: &t.udp_endpoint.tags,
            min_size: t.udp_endpoint.min_size.get(),
            inet_af: &t.udp_endpoint.inet_af,
            owner: Some(&t.udp_endpoint.owner),
            create_time: &t.udp_endpoint.create_time,
            body_offset: 0,
        },
        ObjectKind::TimeWait => {
            let tw = t.time_wait.as_ref()?;
            KindFields {
                tags: &tw.tags,
                min_size: tw.min_size.get(),
                inet_af: &tw.inet_af,
                owner: None,
                create_time: &tw.create_time,
                body_offset: tw.body_offset.get(),
            }
        }
    })
}
