#!/usr/bin/env python3
"""Writes the compare fixtures: one memory side (scan JSON, Windows 7 SP1 x64) and the same
live-response moment in every capture format, with planted discrepancies. Run from this folder.
Expected classes are listed in tests/compare_cli.rs."""
import json

T = 133590404967890000          # acquisition = collection: 2024-05-01T12:34:56.7890000Z
EPOCH = 116444736000000000      # FILETIME of 1970-01-01
HOUR = 36000000000
OFFSET_MIN = 60                 # the host is at UTC+1 (KUSER TimeZoneBias -60)

def iso(raw, offset_min=0, digits=7, naive=False):
    import datetime
    if raw == 0:
        base = datetime.datetime(1601, 1, 1)
        ticks = 0
    else:
        ticks = raw - EPOCH
        base = datetime.datetime(1970, 1, 1)
    local = base + datetime.timedelta(microseconds=(ticks // 10) + offset_min * 60_000_000)
    frac = (ticks % 10_000_000)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{frac:07d}"[:digits]
    if naive:
        return text
    if offset_min == 0:
        return text + "Z"
    sign = "+" if offset_min > 0 else "-"
    return text + f"{sign}{abs(offset_min)//60:02d}:{abs(offset_min)%60:02d}"

def ms(raw):
    return (raw - EPOCH) // 10_000

def ep(off, tag, local, port, remote=None, rport=None, state=None, pid=None, proc=None,
       t=None, dual=False, freed=False, flags=()):
    proto = "udp" if tag == "UdpA" else "tcp"
    fam = "ipv6" if ":" in local else "ipv4"
    fl = sorted(set(flags) | ({"no_time_field"} if t is None else set()))
    return {"proto": proto, "family": fam, "local_addr": local, "local_port": port,
            "remote_addr": remote, "remote_port": rport, "state": state, "dual_stack": dual,
            "pid": pid, "process": proc,
            "create_time": None if t is None else iso(t), "create_time_raw": t,
            "tag": tag, "pool_status": "freed" if freed else "allocated",
            "physical_offset": hex(off), "virtual_address": None, "flags": fl}

t135 = T - HOUR + 1234567
t135v6 = T - HOUR + 1234999
t5985 = T - HOUR + 2345678
t5353 = T - HOUR // 2 + 3456789
t53 = T - 2 * HOUR
t445 = T - 3 * HOUR + 4567891
t137 = T - 3 * HOUR + 5678912
t50555 = T + 100_000_000

endpoints = [
    ep(0x1a2010, "TcpE", "10.0.0.5", 49723, "93.184.216.34", 443, "ESTABLISHED", 1236, "chrome.exe"),
    ep(0x1a3010, "TcpE", "10.0.0.5", 49800, "203.0.113.66", 4444, "ESTABLISHED", 2666, "evil.exe"),
    ep(0x1a4010, "TcpL", "0.0.0.0", 135, "0.0.0.0", 0, "LISTENING", 928, "svchost.exe", t135),
    ep(0x1a5010, "TcpL", "::", 135, "::", 0, "LISTENING", 928, "svchost.exe", t135v6, dual=True),
    ep(0x1a6010, "UdpA", "0.0.0.0", 5353, None, None, None, 2104, "svchost.exe", t5353),
    ep(0x1a7010, "TcTW", "10.0.0.5", 49700, "93.184.216.34", 80, "TIME_WAIT"),
    ep(0x1a8010, "UdpA", "::", 53, None, None, None, 1500, "dns.exe", t53, dual=True, freed=True),
    ep(0x1a9010, "TcpL", "0.0.0.0", 445, "0.0.0.0", 0, "LISTENING", 4, "System", t445),
    ep(0x1aa010, "UdpA", "0.0.0.0", 137, None, None, None, 4, "System", t137),
    ep(0x1ab010, "UdpA", "0.0.0.0", 50555, None, None, None, 3000, "updater.exe", t50555),
    ep(0x1ac010, "TcpL", "::", 5985, "::", 0, "LISTENING", 4, "System", t5985, dual=True),
    ep(0x1ad010, "TcpE", "10.0.0.5", 49750, "192.0.2.10", 443, "ESTABLISHED", 1236, "chrome.exe"),
]

scan = {
    "image": {"file": "win7-sample.raw", "container": "raw", "arch": "x64", "paging": "x64",
              "dtb": "0x187000", "dtb_source": "self-map-scan", "kernel_base": "0xfffff80002a0b000",
              "kernel_pdb": None, "nt": {"major": 6, "minor": 1, "build": 7601},
              "system_time": iso(T), "system_time_raw": T,
              "boot_time": iso(T - 5 * HOUR), "boot_time_raw": T - 5 * HOUR,
              "timezone_bias_minutes": -OFFSET_MIN,
              "physical": {"size": 16777216, "ranges": 1, "end": 16777216}, "warnings": []},
    "profile": {"name": "win7sp1-x64", "reason": "fixture"},
    "endpoints": endpoints,
}
with open("memory-win7.json", "w") as f:
    json.dump(scan, f, indent=2)
    f.write("\n")

# The API's view at time T: (proto, local, lport, remote, rport, MIB-state name, pid, name, raw time)
ZERO = 0
api = [
    ("TCP", "10.0.0.5", 49723, "93.184.216.34", 443, "ESTABLISHED", 1236, "chrome.exe", ZERO),
    ("TCP", "0.0.0.0", 135, "0.0.0.0", 0, "LISTENING", 928, "svchost.exe", t135),
    ("TCP", "::", 135, "::", 0, "LISTENING", 928, "svchost.exe", t135v6),
    ("UDP", "0.0.0.0", 5353, None, None, None, 2104, "svchost.exe", t5353),
    ("TCP", "10.0.0.5", 49700, "93.184.216.34", 80, "TIME_WAIT", 0, None, ZERO),
    ("TCP", "0.0.0.0", 445, "0.0.0.0", 0, "LISTENING", 1000, "notsystem.exe", t445),   # pid_mismatch
    ("UDP", "0.0.0.0", 137, None, None, None, 4, "System", t137 + 20_000_000),          # time_mismatch
    ("TCP", "0.0.0.0", 5985, "0.0.0.0", 0, "LISTENING", 4, "System", t5985),            # dual stack
    ("TCP", "::", 5985, "::", 0, "LISTENING", 4, "System", t5985),
    ("TCP", "10.0.0.5", 49750, "192.0.2.10", 443, "CLOSE_WAIT", 1236, "chrome.exe", ZERO),  # state
    ("TCP", "10.0.0.5", 49900, "198.51.100.7", 443, "CLOSE_WAIT", 1236, "chrome.exe", T - 10_000_000),  # not_in_memory
]
MIB = {"ESTABLISHED": 5, "LISTENING": 2, "TIME_WAIT": 11, "CLOSE_WAIT": 8}

def fam(a):
    return "ipv6" if ":" in a else "ipv4"

# netcarve's own capture
cap = {"format": "netcarve-capture", "version": 1, "host": "WIN7-PC", "collected_raw": T,
       "collected": iso(T), "utc_offset_minutes": OFFSET_MIN, "tcp": [], "udp": []}
for p, l, lp, r, rp, s, pid, name, t in api:
    row = {"family": fam(l), "local_addr": l, "local_port": lp, "pid": pid, "process": name,
           "create_time_raw": t}
    if p == "TCP":
        row.update({"state": MIB[s], "remote_addr": r, "remote_port": rp})
        cap["tcp"].append(row)
    else:
        cap["udp"].append(row)
with open("netcarve.json", "w") as f:
    json.dump(cap, f, indent=2)
    f.write("\n")

def gnc_rows(date):
    rows = []
    for p, l, lp, r, rp, s, pid, name, t in api:
        row = {"Service": "", "ProcessId": pid, "LocalAddress": l, "RemoteHostname": None,
               "Process": None if name is None else name.removesuffix(".exe"),
               "LocalPort": lp, "Protocol": p, "Timestamp": date(t)}
        if p == "TCP":
            row.update({"RemotePort": rp, "State": s.replace("SYN_RCVD", "SYN_RECEIVED"),
                        "RemoteAddress": r})
        rows.append(row)
    return rows

# Windows PowerShell 5.1: UTF-16LE with BOM, 4-space indent, "key":  value, \/Date(ms)\/
text = json.dumps(gnc_rows(lambda t: "/Date(%d)/" % ms(t)), indent=4)
text = text.replace('": ', '":  ').replace("/Date(", "\\/Date(").replace(")/", ")\\/")
with open("ps51.json", "wb") as f:
    f.write(b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le"))

# PowerShell 7: ISO with the local offset (+01:00), zero as local 1601-01-01T01:00:00+01:00
with open("ps7.json", "w") as f:
    json.dump(gnc_rows(lambda t: iso(t, OFFSET_MIN) if t else "1601-01-01T01:00:00+01:00"), f, indent=2)

# Get-NetTCPConnection / Get-NetUDPEndpoint | Select-Object: State numbers, naive local times
# (no offset in the file: converted with --capture-tz or the image's bias)
rows = []
for p, l, lp, r, rp, s, pid, name, t in api:
    row = {"LocalAddress": l, "LocalPort": lp, "OwningProcess": pid,
           "CreationTime": iso(t, OFFSET_MIN, naive=True) if t else "1601-01-01T01:00:00"}
    if p == "TCP":
        row.update({"RemoteAddress": r, "RemotePort": rp, "State": MIB[s], "AppliedSetting": None,
                    "OffloadState": 0})
    rows.append(row)
with open("nettcpip.json", "w") as f:
    json.dump(rows, f, indent=2)

# Velociraptor Windows.Network.Netstat as JSONL: whole seconds UTC
STATUS = {"ESTABLISHED": "ESTAB", "LISTENING": "LISTEN", "TIME_WAIT": "TIME_WAIT",
          "CLOSE_WAIT": "CLOSE_WAIT"}
with open("velociraptor.jsonl", "w") as f:
    for p, l, lp, r, rp, s, pid, name, t in api:
        row = {"Pid": pid, "Name": name or "", "Family": "IPv6" if ":" in l else "IPv4", "Type": p,
               "Status": STATUS[s] if s else "", "Laddr.IP": l, "Laddr.Port": lp,
               "Raddr.IP": r if r is not None else "", "Raddr.Port": rp or 0,
               "Timestamp": iso(t, digits=0)}
        f.write(json.dumps(row, separators=(",", ":")) + "\n")

# osquery process_open_sockets: strings, no time
rows = []
for p, l, lp, r, rp, s, pid, name, t in api:
    rows.append({"family": "23" if ":" in l else "2", "fd": "", "local_address": l,
                 "local_port": str(lp), "path": "" if name is None else "C:\\Windows\\" + name,
                 "pid": str(pid), "protocol": "6" if p == "TCP" else "17",
                 "remote_address": r if r is not None else ("::" if ":" in l else "0.0.0.0"),
                 "remote_port": str(rp or 0), "socket": "",
                 "state": {"LISTENING": "LISTEN"}.get(s, s) if s else ""})
with open("osquery.json", "w") as f:
    json.dump(rows, f, indent=2)

# netstat -ano
lines = ["", "Active Connections", "", "  Proto  Local Address          Foreign Address        State           PID"]
def hp(a, port):
    return f"[{a}]:{port}" if ":" in a else f"{a}:{port}"
for p, l, lp, r, rp, s, pid, name, t in api:
    if p == "TCP":
        lines.append(f"  TCP    {hp(l, lp):<22} {hp(r, rp):<22} {s:<15} {pid}")
    else:
        lines.append(f"  UDP    {hp(l, lp):<22} {'*:*':<22} {'':<15} {pid}")
with open("netstat.txt", "w") as f:
    f.write("\r\n".join(lines) + "\r\n")
