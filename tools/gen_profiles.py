#!/usr/bin/env python3
"""Writes profiles/*.json from the reference fact tables (endpoint-layouts.json, nt-offsets.json).

Our own derivation: it reads numbers from the tables and decides, per profile, which source each
field follows; the notes say why wherever sources disagree (D1-D14 in endpoint-layouts.json).
Usage: tools/gen_profiles.py [REFERENCE_DIR] (default: $NETCARVE_REFERENCE, ../shared/reference,
/work/shared/reference). Output is deterministic.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)


def reference_dir():
    cands = sys.argv[1:2] + [os.environ.get("NETCARVE_REFERENCE", ""),
                             os.path.join(CRATE, "..", "shared", "reference"),
                             "/work/shared/reference"]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "endpoint-layouts.json")):
            return c
    sys.exit("reference tables not found (pass the directory or set NETCARVE_REFERENCE)")


REF = reference_dir()
LAYOUTS = json.load(open(os.path.join(REF, "endpoint-layouts.json")))
NT = json.load(open(os.path.join(REF, "nt-offsets.json")))
VOL3 = LAYOUTS["vol3_tables"]
MPF = LAYOUTS["memprocfs"]["static_offsets"]

CONF_ORDER = ["inferred", "reference", "pdb"]


def h(x):
    return int(x, 16) if isinstance(x, str) else x


def hx(n):
    return None if n is None else "0x%x" % n


class Builder:
    """Collects fields of one profile, remembering which sources they used."""

    def __init__(self):
        self.sources = {}
        self.used = set()
        self.notes = []

    def src(self, key, text):
        self.sources[key] = text
        return key

    def field(self, off, key, conf, alts=()):
        self.used.add(key)
        f = {"offset": hx(off)}
        alts = [a for a in alts if a is not None and a != off]
        if alts:
            f["alternatives"] = [hx(a) for a in alts]
        f["source"] = key
        f["confidence"] = conf
        return f


def span(items):
    """Bytes of body needed to read every (field dict, size) pair, alternatives included."""
    end = 0
    for f, size in items:
        for o in [f["offset"]] + f.get("alternatives", []):
            if o is not None:
                end = max(end, h(o) + size)
    return end


# ---------------------------------------------------------------- nt
def nt_layout(b, arch, nt_key, inferred_from=None):
    """nt fields from nt-offsets.json builds.<arch>.<nt_key>; `inferred_from` marks a carry-over."""
    rec = NT["builds"][arch][nt_key]
    if inferred_from:
        key = b.src("extrapolated-nt", "no source covers this kernel; nt offsets carried over from "
                    "nt-offsets.json builds.%s.%s (%s) (reference: none)" % (arch, nt_key, rec["os"]))
        conf = "inferred"
        b.notes.append("nt: no source gives this kernel's offsets; carried over from build %s %s "
                       "(%s); self-calibration must confirm them on the data, or derive exact ones with "
                       "`netcarve profile from-pdb --nt <the image's kernel PDB> --base %s`."
                       % (nt_key, arch, inferred_from, "<this profile>"))
    elif rec["source"] == "jpcert-isf":
        key = b.src("jpcert", "JPCERT Windows-Symbol-Tables ntkrnlmp.pdb ISFs, %s (BSD-3-Clause) "
                    "(reference: nt-offsets.json builds.%s.%s)" % (rec["os"], arch, nt_key))
        conf = "pdb"
    else:
        key = b.src("vol2", "Volatility 2.6.2 %s vtypes, %s (facts only) (reference: nt-offsets.json "
                    "builds.%s.%s)" % (", ".join(rec.get("vol2_profiles", [])), rec["os"], arch, nt_key))
        conf = "reference"
    ep, kp, oh, ku = rec["_EPROCESS"], rec["_KPROCESS"], rec["_OBJECT_HEADER"], rec["_KUSER_SHARED_DATA"]
    sizes = rec.get("eprocess_sizes")
    if isinstance(sizes, dict):
        size = max(h(s) for s in sizes)
    elif isinstance(sizes, str):
        size = h(sizes)
    else:
        size = None

    def f(v):
        return b.field(None if v in (None, "absent") else h(v), key, conf)

    if "TypeIndex" not in oh:
        b.notes.append("_OBJECT_HEADER before Windows 7 has a Type pointer, not a TypeIndex: type_index is absent.")
    return {
        "eprocess": {
            "size": hx(size),
            "dispatcher_type": f(rec["_DISPATCHER_HEADER"]["Type"]),
            "directory_table_base": f(kp["DirectoryTableBase"]),
            "unique_process_id": f(ep["UniqueProcessId"]),
            "active_process_links": f(ep["ActiveProcessLinks"]),
            "create_time": f(ep["CreateTime"]),
            "exit_time": f(ep["ExitTime"]),
            "image_file_name": f(ep["ImageFileName"]),
            "inherited_from_unique_process_id": f(ep["InheritedFromUniqueProcessId"]),
        },
        "object_header": {"body": f(oh["Body"]), "type_index": f(oh.get("TypeIndex"))},
        "kuser_shared_data": {
            "interrupt_time": f(ku["InterruptTime"]),
            "system_time": f(ku["SystemTime"]),
            "time_zone_bias": f(ku["TimeZoneBias"]),
            "nt_build_number": f(ku["NtBuildNumber"]),
            "nt_product_type": f(ku["NtProductType"]),
            "nt_major_version": f(ku["NtMajorVersion"]),
            "nt_minor_version": f(ku["NtMinorVersion"]),
        },
    }


# ---------------------------------------------------------------- tcpip
def vol3_fields(table, struct, unused=False):
    s = VOL3[table]["unused_structs" if unused else "structs"][struct]["fields"]
    return {k: (None if v.get("absent") else h(v["off"])) for k, v in s.items()}


def mpf_range(kind, build):
    """The MemProcFS static-offset row of `kind` (TcpL/UdpA) covering `build`."""
    for row in MPF[kind]:
        r = row["builds"]
        if r.startswith(">="):
            ok = build >= int(r[2:])
        elif r.startswith("<"):
            ok = build < int(r[1:].split()[0])
        else:
            lo, hi = r.split("-")
            ok = int(lo) <= build <= int(hi)
        if ok:
            return {k: h(v.split()[0]) for k, v in row.items()
                    if k != "builds" and v != "absent" and v.split()[0].startswith("0x")}
    raise KeyError((kind, build))


def tcpip_layout(b, p):
    arch, ps = p["arch"], (8 if p["arch"] == "x64" else 4)
    conf_of = {"vol3": "reference", "memprocfs": "reference", "extrapolated-tcpip": "inferred"}
    t = p["vol3"]  # vol3 table of record (own table, or the carry-over for inferred fields)
    v3 = b.src("vol3", "Volatility 3 2.28.2 netscan-%s.json (hand-written table; facts only) "
               "(reference: endpoint-layouts.json vol3_tables.%s)" % (t, t)) if not p.get("tcpe_inferred_from") else None
    mpf_key = "memprocfs"
    MPF_TEXT = ("MemProcFS v5.17.5 vmm/vmmnet.c (facts only; x64) "
                "(reference: endpoint-layouts.json memprocfs)")

    def mp():
        return b.src(mpf_key, MPF_TEXT)

    def ex():
        return b.src("extrapolated-tcpip", "no source has this build's table: values of Volatility 3 "
                     "netscan-%s.json carried over (reference: none)" % t)

    te = vol3_fields(t, "_TCP_ENDPOINT")
    tl = vol3_fields(t, "_TCP_LISTENER")
    ua = vol3_fields(t, "_UDP_ENDPOINT")
    inet = vol3_fields(t, "_INETAF")
    ai = vol3_fields(t, "_ADDRINFO")
    la = vol3_fields(t, "_LOCAL_ADDRESS")
    build = p["build_min"]

    # --- TcpE / TTcb
    tcpe_src = ex() if p.get("tcpe_inferred_from") else v3
    tconf = conf_of[tcpe_src]
    tf = {k: b.field(te.get(k), tcpe_src, tconf) for k in
          ["InetAF", "AddrInfo", "State", "LocalPort", "RemotePort", "Owner", "CreateTime"]}
    if te.get("CreateTime") is None:
        tf["CreateTime"] = b.field(None, tcpe_src, tconf)
        b.notes.append("TcpE has no CreateTime in this layout (every source agrees); the API reports 0 "
                       "(1601-01-01) for it.")
    for k, v in p.get("tcpe_override", {}).items():
        tf[k] = v(b)
    tcp_endpoint = {
        "tags": ["TcpE", "TTcb"] if arch == "x64" and build >= 20348 else ["TcpE"],
        "min_size": None,
        "inet_af": tf["InetAF"], "addr_info": tf["AddrInfo"], "state": tf["State"],
        "local_port": tf["LocalPort"], "remote_port": tf["RemotePort"], "owner": tf["Owner"],
        "create_time": tf["CreateTime"],
    }
    tcp_endpoint["min_size"] = hx(span([(tf["InetAF"], ps), (tf["AddrInfo"], ps), (tf["State"], 4),
                                        (tf["LocalPort"], 2), (tf["RemotePort"], 2), (tf["Owner"], ps),
                                        (tf["CreateTime"], 8)]))
    if arch == "x64" and build >= 20348:
        b.notes.append("D12: TTcb blocks hold the same _TCP_ENDPOINT as TcpE from 20348 on; both tags are scanned.")

    # --- TcpL
    if p.get("tcpl_memprocfs"):
        m = mpf_range("TcpL", build)
        k = mp()
        lf = {"InetAF": b.field(m["InetAF"], k, "reference"), "Owner": b.field(m["Owner"], k, "reference"),
              "CreateTime": b.field(m["CreateTime"], k, "reference"),
              "LocalAddr": b.field(m["LocalAddr"], k, "reference"), "Port": b.field(m["LocalPort"], k, "reference")}
    else:
        lf = {k: b.field(tl.get(k), tcpe_src, tconf) for k in ["InetAF", "Owner", "CreateTime", "LocalAddr", "Port"]}
    for k, v in p.get("tcpl_override", {}).items():
        lf[k] = v(b)
    tcp_listener = {
        "tags": ["TcpL"],
        "min_size": hx(span([(lf["InetAF"], ps), (lf["Owner"], ps), (lf["CreateTime"], 8),
                             (lf["LocalAddr"], ps), (lf["Port"], 2)])),
        "inet_af": lf["InetAF"], "owner": lf["Owner"], "create_time": lf["CreateTime"],
        "local_addr": lf["LocalAddr"], "local_addr_chain": "local_address", "port": lf["Port"],
    }

    # --- UdpA
    win10_udp = arch == "x64" and build >= 10240
    if p.get("udpa_memprocfs"):
        m = mpf_range("UdpA", build)
        k = mp()
        uf = {"InetAF": b.field(m["InetAF"], k, "reference"), "Owner": b.field(m["Owner"], k, "reference"),
              "CreateTime": b.field(m["CreateTime"], k, "reference"),
              "LocalAddr": b.field(m["LocalAddr"], k, "reference"), "Port": b.field(m["LocalPort"], k, "reference")}
    else:
        uf = {k: b.field(ua.get(k), tcpe_src, tconf) for k in ["InetAF", "Owner", "CreateTime", "LocalAddr", "Port"]}
    for k, v in p.get("udpa_override", {}).items():
        uf[k] = v(b)
    udp_endpoint = {
        "tags": ["UdpA"],
        "min_size": hx(span([(uf["InetAF"], ps), (uf["Owner"], ps), (uf["CreateTime"], 8),
                             (uf["LocalAddr"], ps), (uf["Port"], 2)])),
        "inet_af": uf["InetAF"], "owner": uf["Owner"], "create_time": uf["CreateTime"],
        "local_addr": uf["LocalAddr"], "local_addr_chain": "win10_udp" if win10_udp else "local_address",
        "port": uf["Port"],
    }
    if win10_udp:
        b.notes.append("D4: UdpA local address follows Volatility 3's _LOCAL_ADDRESS_WIN10_UDP (one dereference "
                       "less than _LOCAL_ADDRESS); MemProcFS reads *(*(la + 0x18)) + 0x18 instead, unverified.")

    # --- TcTW (D9): vol3's _TCP_TIMEWAIT_ENDPOINT where defined, else MemProcFS (x64 only)
    tw_def = "_TCP_TIMEWAIT_ENDPOINT" in VOL3[t].get("unused_structs", {})
    if tw_def:
        w = vol3_fields(t, "_TCP_TIMEWAIT_ENDPOINT", unused=True)
        wk = tcpe_src if p.get("tcpe_inferred_from") else v3
        wc = conf_of[wk]
        wf = {k: b.field(w.get(k), wk, wc) for k in ["InetAF", "LocalPort", "RemotePort", "LocalAddr", "RemoteAddress"]}
        wf["CreateTime"] = b.field(None, wk, wc)
        time_wait = {
            "tags": ["TcTW"],
            "min_size": hx(span([(wf["InetAF"], ps), (wf["LocalPort"], 2), (wf["RemotePort"], 2),
                                 (wf["LocalAddr"], ps), (wf["RemoteAddress"], ps)])),
            "body_offset": "0x0",
            "inet_af": wf["InetAF"], "local_port": wf["LocalPort"], "remote_port": wf["RemotePort"],
            "local_addr": wf["LocalAddr"], "local_addr_chain": "local_address",
            "remote_addr": wf["RemoteAddress"], "remote_addr_chain": "pointer", "create_time": wf["CreateTime"],
        }
        b.notes.append("D9: TcTW follows Volatility 3's _TCP_TIMEWAIT_ENDPOINT of this table (defined, unused by "
                       "vol3 netscan); it has no CreateTime.")
    else:
        tw = MPF["TcTW"]
        k = mp()
        wf = {"InetAF": b.field(h(tw["InetAF"]), k, "reference"),
              "LocalPort": b.field(h(tw["LocalPort"]), k, "reference"),
              "RemotePort": b.field(h(tw["RemotePort"]), k, "reference"),
              "LocalAddr": b.field(h(tw["AddrInfo"].split()[0]), k, "reference"),
              "RemoteAddr": b.field(h(tw["RemoteAddr"].split()[0]), k, "reference"),
              "CreateTime": b.field(h(tw["CreateTime"]), k, "reference")}
        time_wait = {
            "tags": ["TcTW"],
            "min_size": tw["size_read"],
            "body_offset": "0x0",
            "inet_af": wf["InetAF"], "local_port": wf["LocalPort"], "remote_port": wf["RemotePort"],
            "local_addr": wf["LocalAddr"], "local_addr_chain": "time_wait_inline",
            "remote_addr": wf["RemoteAddr"], "remote_addr_chain": "inline", "create_time": wf["CreateTime"],
        }
        b.notes.append("D9: TcTW follows MemProcFS (Volatility 3 defines no TIME_WAIT struct for Windows 10+); "
                       "object base = pool body (its hash-table route; its pool-tag route uses body + 0x40, unverified).")

    # --- helper structs
    if p.get("helpers_memprocfs"):
        k = mp()
        helpers = {
            "inetaf_address_family": b.field(0x18 if build >= 9200 else 0x14, k, "reference"),
            "addrinfo_local": b.field(0x0, k, "reference"),
            "addrinfo_remote": b.field(0x10, k, "reference"),
            "local_address_p_data": b.field(0x10, k, "reference"),
        }
    else:
        hk = tcpe_src
        hc = conf_of[hk]
        helpers = {
            "inetaf_address_family": b.field(inet["AddressFamily"], hk, hc),
            "addrinfo_local": b.field(ai["Local"], hk, hc),
            "addrinfo_remote": b.field(ai["Remote"], hk, hc),
            "local_address_p_data": b.field(la["pData"], hk, hc),
        }
    if win10_udp:
        if "_LOCAL_ADDRESS_WIN10_UDP" in VOL3[t]["structs"] and not p.get("tcpe_inferred_from"):
            helpers["win10_udp_p_data"] = b.field(vol3_fields(t, "_LOCAL_ADDRESS_WIN10_UDP")["pData"], v3, "reference")
        else:
            helpers["win10_udp_p_data"] = b.field(0x0, ex(), "inferred")
    else:
        helpers["win10_udp_p_data"] = None
    helpers["tables"] = tables_layout(b, p, t, te, tl, ua, v3, mp)
    return dict({"tcp_endpoint": tcp_endpoint, "tcp_listener": tcp_listener, "udp_endpoint": udp_endpoint,
                 "time_wait": time_wait}, **helpers)


def tables_layout(b, p, t, te, tl, ua, v3, mp):
    """tcpip's own tables (what netstat enumerates): Volatility 3's netstat structures of table `t`,
    or None where no source describes them for this layout."""
    nw = VOL3[t].get("netstat_walk_structs")
    if not nw or p.get("tcpe_inferred_from"):
        b.notes.append("tcpip tables: no source describes the partition and port-pool structures for this "
                       "layout, so they are not walked (records say linked: null).")
        return None

    def f(struct, name):
        return b.field(h(nw[struct]["fields"][name]["off"]), v3, "reference")

    link = te["ListEntry"]
    # MemProcFS finds a TcpE's hash link at +0x40 on x64 (its pool-header test at link - 0x50);
    # Volatility 3's tables say +0x28. The walker tries both, checking the pool tag.
    link_alts = [0x40] if p["arch"] == "x64" and link != 0x40 else []
    unused = VOL3[t].get("unused_structs", {})
    tw = unused.get("_TCP_TIMEWAIT_ENDPOINT", {}).get("fields", {}).get("ListEntry")
    tw_link = None if tw is None else b.field(h(tw["off"]), v3, "reference")
    if tw is None:
        # The TcTW layout follows MemProcFS here: its hash-table route has the link at the object's start.
        tw_link = b.field(0x0, mp(), "reference")
    b.notes.append("tcpip tables: partition hash tables and port pools follow Volatility 3's netstat structures "
                   "(facts only)" + ("; the TcpE hash link 0x%x, MemProcFS's 0x40 tried as the alternative"
                                     % link if link_alts else "") + ".")
    return {
        "tcp_endpoint_link": b.field(link, v3, "reference", link_alts),
        "time_wait_link": tw_link,
        "tcp_listener_next": b.field(tl["Next"], v3, "reference"),
        "udp_endpoint_next": b.field(ua["Next"], v3, "reference"),
        "partition_size": hx(h(nw["_PARTITION"]["vol3_size"])),
        "partition_endpoints": f("_PARTITION", "Endpoints"),
        "partition_second_table": f("_PARTITION", "UnknownHashTable"),
        "compartment_set_compartment": f("_INET_COMPARTMENT_SET", "InetCompartment"),
        "compartment_protocol": f("_INET_COMPARTMENT", "ProtocolCompartment"),
        "protocol_port_pool": f("_PROTOCOL_COMPARTMENT", "PortPool"),
        "port_pool_bitmap": f("_INET_PORT_POOL", "PortBitMap"),
        "port_pool_assignments": f("_INET_PORT_POOL", "PortAssignments"),
        "port_assignment_list": f("_PORT_ASSIGNMENT", "InPaBigPoolBase"),
        "port_entry_size": hx(h(nw["_PORT_ASSIGNMENT_ENTRY"]["vol3_size"])),
        "port_entry_pointer": f("_PORT_ASSIGNMENT_ENTRY", "Entry"),
    }


# ---------------------------------------------------------------- per-profile decisions
def alt(off, alts, key_fn, conf, note=None):
    def make(b):
        if note:
            b.notes.append(note)
        return b.field(off, key_fn(b), conf, alts)
    return make


def k_vol3(b):
    return "vol3"


def k_mpf(b):
    return b.src("memprocfs", "MemProcFS v5.17.5 vmm/vmmnet.c (facts only; x64) "
                 "(reference: endpoint-layouts.json memprocfs)")


def k_ex(b):
    return "extrapolated-tcpip"


D5 = {"CreateTime": alt(0x40, [0x20], k_vol3, "reference",
                        "D5: TcpL CreateTime follows Volatility 3 (0x40, the Windows 10 value as well); "
                        "Volatility 2 keeps 0x20, tried as the alternative.")}
D6 = {"Port": alt(0x80, [0x78], k_mpf, "reference",
                  "D6: UdpA Port 0x80 (MemProcFS and Volatility 2 agree; Volatility 3 alone has 0x78, "
                  "tried as the alternative).")}
W11_TCPE = {
    "State": alt(0x6c, [0x70], k_ex, "inferred",
                 "D10: TcpE State 0x6c carried over from 20348 (vol3); MemProcFS probes 0x70 on 22000+, "
                 "tried as the alternative (ports then follow at State + 4 / + 6)."),
    "LocalPort": alt(0x70, [0x74], k_ex, "inferred"),
    "RemotePort": alt(0x72, [0x76], k_ex, "inferred"),
    "CreateTime": alt(0x308, [0x300], k_ex, "inferred",
                      "D1: TcpE CreateTime Owner + 0x18 (vol3 20348, carried over); MemProcFS's Owner + 0x10 "
                      "(0x300) is the alternative."),
}

X64 = [
    dict(name="vista-x64", desc="Windows Vista RTM / Server 2008 pre-SP1 (6.0.6000) x64", nt=(6, 0), builds=(6000, 6000),
         nt_key="6000-6002", vol3="vista-x64"),
    dict(name="vista-sp12-x64", desc="Windows Vista SP1/SP2 / Server 2008 (6.0.6001-6003) x64", nt=(6, 0),
         builds=(6001, 6003), nt_key="6000-6002", vol3="vista-sp12-x64"),
    dict(name="win7-x64", desc="Windows 7 / Server 2008 R2 (6.1.7600-8400) x64", nt=(6, 1), builds=(7600, 8400),
         nt_key="7601", vol3="win7-x64",
         extra_notes=["nt offsets from the 7601 ISFs; Volatility 2's 7600 vtypes give the same field offsets."]),
    dict(name="win8-x64", desc="Windows 8 / Server 2012 (6.2.9200) x64", nt=(6, 2), builds=(9200, 9200),
         nt_key="9200", vol3="win8-x64", tcpl_override=D5),
    dict(name="win81-x64", desc="Windows 8.1 / Server 2012 R2 (6.3.9600, tcpip.sys < 6.3.9600.19935) x64",
         nt=(6, 3), builds=(9600, 9600), tcpip=(None, "6.3.9600.19935"), nt_key="9600", vol3="win81-x64",
         tcpl_override=D5, udpa_override=D6),
    dict(name="win81-19935-x64", desc="Windows 8.1 / Server 2012 R2 (6.3.9600, tcpip.sys >= 6.3.9600.19935) x64",
         nt=(6, 3), builds=(9600, 9600), tcpip=("6.3.9600.19935", None), nt_key="9600", vol3="win81-19935-x64",
         tcpl_override=D5, udpa_override=D6,
         extra_notes=["tcpip.sys 6.3.9600.19935 moved TcpE Owner to 0x260 and added a TcpE CreateTime at 0x270 "
                      "(Volatility 3's split table); older 9600 tcpip.sys has no TcpE CreateTime."]),
]
for bld in (10240, 10586, 14393):
    X64.append(dict(name="win10-%d-x64" % bld, desc="Windows 10 (10.0.%d) x64" % bld, nt=(10, 0), builds=(bld, bld),
                    nt_key=str(bld), vol3="win10-x64",
                    extra_notes=["Volatility 3 uses one table (netscan-win10-x64.json) for 10240, 10586 and 14393."]))
X64 += [
    dict(name="win10-15063-x64", desc="Windows 10 1703 (10.0.15063) x64", nt=(10, 0), builds=(15063, 15063),
         nt_key="15063", vol3="win10-15063-x64",
         tcpe_override={"CreateTime": alt(0x280, [0x268], k_mpf, "reference",
                                          "D2: TcpE CreateTime Owner + 0x10 = 0x280 (MemProcFS's rule, and the "
                                          "pattern of every other Windows 10 x64 table); Volatility 3/2's 0x268 "
                                          "(Owner - 8, reported broken in Vol2 PR #679) is the alternative.")}),
    dict(name="win10-16299-x64", desc="Windows 10 1709 (10.0.16299) x64", nt=(10, 0), builds=(16299, 16299),
         nt_key="16299", vol3="win10-16299-x64"),
    dict(name="win10-17134-x64", desc="Windows 10 1803 (10.0.17134) x64", nt=(10, 0), builds=(17134, 17134),
         nt_key="17134", vol3="win10-17134-x64"),
    dict(name="win10-17763-x64", desc="Windows 10 1809 / Server 2019 (10.0.17763) x64", nt=(10, 0),
         builds=(17763, 17763), nt_key="17763", vol3="win10-17763-x64"),
    dict(name="win10-18362-x64", desc="Windows 10 1903 (10.0.18362) x64", nt=(10, 0), builds=(18362, 18362),
         nt_key="18362", vol3="win10-18362-x64",
         udpa_override={"Port": alt(0x78, [0x80], k_vol3, "reference",
                                    "D3: UdpA Port/LocalAddr 0x78/0x80 (vol3 18362 table, Vol2, MemProcFS); the "
                                    "18363 table's 0x80/0x88 are the alternatives, because vol3 picks between them "
                                    "by kernel patch level (_KQOS_GROUPING_SETS), not by release."),
                        "LocalAddr": alt(0x80, [0x88], k_vol3, "reference")}),
    dict(name="win10-18363-x64", desc="Windows 10 1909 (10.0.18363, kernel 10.0.18362.x) x64", nt=(10, 0),
         builds=(18363, 18363), nt_key="18362", vol3="win10-18363-x64",
         extra_notes=["1909 runs the 10.0.18362.x kernel: nt offsets from the 18362 ISFs."],
         udpa_override={"Port": alt(0x80, [0x78], k_vol3, "reference",
                                    "D3: UdpA Port/LocalAddr 0x80/0x88 (vol3 18363 table, Vol2 issue #763); the "
                                    "18362 table's 0x78/0x80 are the alternatives (vol3's 18362/18363 choice "
                                    "follows the kernel patch level)."),
                        "LocalAddr": alt(0x88, [0x80], k_vol3, "reference")}),
    dict(name="win10-19041-x64", desc="Windows 10 2004-22H2 (10.0.19041-19045) x64", nt=(10, 0),
         builds=(19041, 19045), nt_key="19041", vol3="win10-19041-x64"),
    dict(name="win10-20348-x64", desc="Windows Server 2022 (10.0.20348) x64", nt=(10, 0), builds=(20348, 20348),
         nt_key="20348", vol3="win10-20348-x64",
         tcpe_override={"CreateTime": alt(0x308, [0x300], k_vol3, "reference",
                                          "D1: TcpE CreateTime Owner + 0x18 = 0x308 (Volatility 3's 20348 table, "
                                          "the only per-build table); MemProcFS's Owner + 0x10 (0x300) is the "
                                          "alternative.")}),
    dict(name="win11-22000-x64", desc="Windows 11 21H2 (10.0.22000) x64", nt=(10, 0), builds=(22000, 22000),
         nt_key="22000", vol3="win10-20348-x64", tcpe_inferred_from="20348", tcpe_override=W11_TCPE,
         tcpl_memprocfs=True, udpa_memprocfs=True, helpers_memprocfs=True),
    dict(name="win11-22621-x64", desc="Windows 11 22H2/23H2 (10.0.22621-22631) x64", nt=(10, 0),
         builds=(22621, 22631), nt_key="22000", nt_inferred="no 22621/22631 kernel in any source; offsets of 22000",
         vol3="win10-20348-x64", tcpe_inferred_from="20348", tcpe_override=W11_TCPE,
         tcpl_memprocfs=True, udpa_memprocfs=True, helpers_memprocfs=True),
    dict(name="win11-26100-x64", desc="Windows 11 24H2 / Server 2025 (10.0.26100) x64", nt=(10, 0),
         builds=(26100, 26100), nt_key="22000", nt_inferred="no 26100 kernel in any source; offsets of 22000",
         vol3="win10-20348-x64", tcpe_inferred_from="20348", tcpe_override=W11_TCPE,
         tcpl_memprocfs=True, udpa_memprocfs=True, helpers_memprocfs=True,
         extra_notes=["D11: TcpL and UdpA follow MemProcFS's >= 26100 rows, the only source for 24H2 "
                      "(Volatility 3 silently uses its 20348 table here)."]),
]

X86 = [
    dict(name="vista-x86", desc="Windows Vista / Server 2008 (6.0.6000-6003) x86", nt=(6, 0), builds=(6000, 6003),
         nt_key="6000-6002", vol3="vista-x86"),
    dict(name="win7-x86", desc="Windows 7 (6.1.7600-8400) x86", nt=(6, 1), builds=(7600, 8400), nt_key="7601",
         vol3="win7-x86"),
    dict(name="win8-x86", desc="Windows 8 (6.2.9200) x86", nt=(6, 2), builds=(9200, 9200), nt_key="9200",
         vol3="win8-x86"),
    dict(name="win81-x86", desc="Windows 8.1 (6.3.9600) x86", nt=(6, 3), builds=(9600, 9600), nt_key="9600",
         vol3="win81-x86",
         extra_notes=["x86 has one 9600 table in every source: no tcpip.sys version split."]),
    dict(name="win10-10240-x86", desc="Windows 10 1507 (10.0.10240) x86", nt=(10, 0), builds=(10240, 10240),
         nt_key="10240", vol3="win10-10240-x86",
         extra_notes=["D7/D8: TcpL/UdpA and the TcpE CreateTime (Owner + 8) follow Volatility 3's 10240-x86 table, "
                      "a single source; Volatility 2 uses the Vista/7 x86 layouts and no TcpE time."]),
    dict(name="win10-10586-x86", desc="Windows 10 1511 (10.0.10586) x86", nt=(10, 0), builds=(10586, 10586),
         nt_key="10586", vol3="win10-10586-x86",
         extra_notes=["D7/D8: TcpE/TcpL/UdpA follow Volatility 3's 10586-x86 table, a single source; Volatility 2 "
                      "uses the Vista/7 x86 layouts and no TcpE time."]),
    dict(name="win10-14393-x86", desc="Windows 10 1607 (10.0.14393) x86", nt=(10, 0), builds=(14393, 14393),
         nt_key="14393", vol3="win10-14393-x86"),
    dict(name="win10-15063-x86", desc="Windows 10 1703/1709 (10.0.15063-16299) x86", nt=(10, 0),
         builds=(15063, 16299), nt_key="15063", vol3="win10-15063-x86",
         extra_notes=["Volatility 2 gives identical nt offsets for 15063 and 16299 x86."]),
    dict(name="win10-17134-x86", desc="Windows 10 1803/1809 (10.0.17134-17763) x86", nt=(10, 0),
         builds=(17134, 17763), nt_key="17134", vol3="win10-17134-x86",
         extra_notes=["Volatility 2 gives identical nt field offsets for 17134 and 17763 x86."]),
    dict(name="win10-18362-x86", desc="Windows 10 1903-22H2 (10.0.18362-19045) x86, inferred", nt=(10, 0),
         builds=(18362, 19045), nt_key="17763",
         nt_inferred="no x86 kernel after 17763 in any source; offsets of 17763 x86",
         vol3="win10-17134-x86", tcpe_inferred_from="17134",
         extra_notes=["tcpip: Volatility 3's 17134-x86 table carried over (vol3's own fallback for later x86 "
                      "builds); netscan-win10-19041-x86.json is a broken copy and is not used (D13). Every offset "
                      "must be confirmed by self-calibration."]),
]


def build_profile(p, arch):
    b = Builder()
    nt = nt_layout(b, arch, p["nt_key"], p.get("nt_inferred"))
    tcpip = tcpip_layout(b, dict(p, arch=arch, build_min=p["builds"][0]))
    b.notes.extend(p.get("extra_notes", []))
    b.notes.append("D14: tcpip offsets (Owner, CreateTime above all) move with tcpip.sys patch levels inside one "
                   "build; treat them as first guesses confirmed per image.")
    # Weakest confidence of every field.
    confs = []

    def walk(v):
        if isinstance(v, dict):
            if "confidence" in v and "source" in v:
                confs.append(v["confidence"])
            for x in v.values():
                walk(x)
    walk(nt)
    walk(tcpip)
    conf = min(confs, key=CONF_ORDER.index)
    sources = {k: v for k, v in sorted(b.sources.items()) if k in b.used}
    tv = p.get("tcpip")
    notes = []
    for n in b.notes:  # dedupe, keep first-seen order
        if n not in notes:
            notes.append(n)
    return {
        "name": p["name"],
        "arch": arch,
        "description": p["desc"],
        "match": {"nt_major": p["nt"][0], "nt_minor": p["nt"][1], "build_min": p["builds"][0],
                  "build_max": p["builds"][1],
                  "tcpip_version": None if tv is None else {"min": tv[0], "max": tv[1]}},
        "confidence": conf,
        "sources": sources,
        "notes": notes,
        "nt": nt,
        "tcpip": tcpip,
    }


def main():
    out = os.path.join(CRATE, "profiles")
    os.makedirs(out, exist_ok=True)
    names = []
    for arch, plist in (("x64", X64), ("x86", X86)):
        for p in plist:
            prof = build_profile(p, arch)
            names.append(prof["name"])
            with open(os.path.join(out, prof["name"] + ".json"), "w") as f:
                json.dump(prof, f, indent=1)
                f.write("\n")
    for stale in sorted(os.listdir(out)):
        if stale.endswith(".json") and stale[:-5] not in names:
            os.remove(os.path.join(out, stale))
    print("wrote %d profiles to %s" % (len(names), out))


if __name__ == "__main__":
    main()
