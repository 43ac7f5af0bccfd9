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

# ---- Localized netstat, PowerShell text tables, Velociraptor NetstatEnriched (issue 18) ----

def local_dt(raw, offset_min=OFFSET_MIN):
    import datetime
    return datetime.datetime(1601, 1, 1) + datetime.timedelta(
        microseconds=raw // 10 + offset_min * 60_000_000)

def netstat_lines(title, header, states):
    """netstat -ano with a translated title/header and `states` mapping English state words."""
    out = ["", title, "", header]
    for p, l, lp, r, rp, s, pid, name, t in api:
        if p == "TCP":
            out.append(f"  TCP    {hp(l, lp):<22} {hp(r, rp):<22} {states.get(s, s):<15} {pid}")
        else:
            out.append(f"  UDP    {hp(l, lp):<22} {'*:*':<22} {'':<15} {pid}")
    return "\r\n".join(out) + "\r\n"

# Spanish Windows 7 `netstat -ano > file`: the console's OEM code page (CP850), header
# translated, state words left in English. Shape learned from a real Spanish Windows 7 SP1 x64
# capture (shared/real-world/netstat-ano-win7-es-cp850.txt, not copied).
with open("netstat-es-cp850.txt", "wb") as f:
    f.write(netstat_lines(
        "Conexiones activas",
        "  Proto  Dirección local          Dirección remota        Estado           PID",
        {}).encode("cp850"))

# German Windows: CP850, header and state words translated. Shape learned from a real German
# `netstat -an` in a published network-analysis report and the German state maps of
# systeminformation (network.js) and check_mk's Windows agent.
DE_STATES = {"LISTENING": "ABHÖREN", "ESTABLISHED": "HERGESTELLT", "TIME_WAIT": "WARTEND",
             "CLOSE_WAIT": "SCHLIESSEN_WARTEN"}
with open("netstat-de-cp850.txt", "wb") as f:
    f.write(netstat_lines(
        "Aktive Verbindungen",
        "  Proto  Lokale Adresse         Remoteadresse          Status           PID",
        DE_STATES).encode("cp850"))

# Japanese Windows: CP932 (the OEM and ANSI page of ja-JP), header translated, states English
# (as Windows' Japanese netstat messages print them; no real output was found to confirm).
with open("netstat-ja-cp932.txt", "wb") as f:
    f.write(netstat_lines(
        "アクティブな接続",
        "  プロトコル  ローカル アドレス      外部アドレス           状態            PID",
        {}).encode("cp932"))

# Get-NetTCPConnection / Get-NetUDPEndpoint objects as PowerShell shows them: State names
# (Listen, Established, TimeWait, CloseWait), OwningProcess, CreationTime in local time.
PS_STATE = {"ESTABLISHED": "Established", "LISTENING": "Listen", "TIME_WAIT": "TimeWait",
            "CLOSE_WAIT": "CloseWait"}
TCP_COLS = ["State", "AppliedSetting", "OwningProcess", "CreationTime", "OffloadState",
            "LocalAddress", "LocalPort", "RemoteAddress", "RemotePort", "PSComputerName",
            "CimClass"]

def ps_objects(date):
    """One dict per API row, in the property order of MSFT_NetTCPConnection; UDP rows lack
    the TCP-only properties (Export-Csv leaves their cells empty)."""
    objs = []
    for p, l, lp, r, rp, s, pid, name, t in api:
        o = {"OwningProcess": str(pid), "CreationTime": date(t), "LocalAddress": l,
             "LocalPort": str(lp), "PSComputerName": "",
             "CimClass": "ROOT/StandardCimv2:MSFT_Net%s" % ("TCPConnection" if p == "TCP"
                                                             else "UDPEndpoint")}
        if p == "TCP":
            o.update({"State": PS_STATE[s], "AppliedSetting": "Internet" if r != l else "",
                      "OffloadState": "InHost", "RemoteAddress": r, "RemotePort": str(rp)})
        objs.append(o)
    return objs

def export_csv(path, objs, delimiter=",", type_line=True, encoding="utf-8", bom=False):
    """`Get-NetTCPConnection; Get-NetUDPEndpoint | Export-Csv`: every value quoted, the first
    object's properties as the header, CRLF; Windows PowerShell 5.1 writes the #TYPE line."""
    import csv, io
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    if type_line:
        buf.write("#TYPE Microsoft.Management.Infrastructure.CimInstance#ROOT/StandardCimv2/"
                  "MSFT_NetTCPConnection\r\n")
    w.writerow(TCP_COLS)
    for o in objs:
        w.writerow([o.get(c, "") for c in TCP_COLS])
    data = buf.getvalue().encode(encoding)
    with open(path, "wb") as f:
        f.write((b"\xef\xbb\xbf" if bom else b"") + data)

def en_us(t):
    d = local_dt(t)
    h = d.hour % 12 or 12
    return f"{d.month}/{d.day}/{d.year} {h}:{d.minute:02d}:{d.second:02d} {'PM' if d.hour >= 12 else 'AM'}"

def de_de(t):
    return local_dt(t).strftime("%d.%m.%Y %H:%M:%S")

def ko_kr(t):
    d = local_dt(t)
    h = d.hour % 12 or 12
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d} {'오후' if d.hour >= 12 else '오전'} {h}:{d.minute:02d}:{d.second:02d}"

def ja_jp(t):
    d = local_dt(t)
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d} {d.hour}:{d.minute:02d}:{d.second:02d}"

# en-US, Windows PowerShell 5.1 (`#TYPE`, ASCII). Its zero is written as the seed case
# shows it, `1/1/1601 2:00:00 AM` (FILETIME 0 on a UTC+2 host): any time on 1/1/1601 is zero,
# whatever the zone. All dates are May 1: day and month cannot be told apart, so the file is read
# with --capture-culture en-US (and refused without it).
export_csv("pscsv-en-US.csv", ps_objects(lambda t: en_us(t) if t else "1/1/1601 2:00:00 AM"),
           encoding="ascii")
# de-DE, PowerShell 7 (no #TYPE) with -UseCulture (the culture's list separator `;`).
export_csv("pscsv-de-DE.csv", ps_objects(lambda t: de_de(t)), delimiter=";", type_line=False)
# ko-KR, -Encoding UTF8 (a BOM): 오전/오후 before the time.
export_csv("pscsv-ko-KR.csv", ps_objects(lambda t: ko_kr(t)), bom=True)

# `Get-NetTCPConnection | Format-List; Get-NetUDPEndpoint | Format-List` on a ja-JP host, UTF-8:
# the default list view's properties, names padded to one column, a blank line between objects.
LIST_TCP = ["LocalAddress", "LocalPort", "RemoteAddress", "RemotePort", "State",
            "AppliedSetting", "OwningProcess", "CreationTime", "OffloadState"]
LIST_UDP = ["LocalAddress", "LocalPort", "OwningProcess", "CreationTime"]
lines = [""]
for o in ps_objects(lambda t: ja_jp(t)):
    cols = LIST_TCP if "State" in o else LIST_UDP
    width = max(len(c) for c in cols)
    for c in cols:
        lines.append(f"{c:<{width}} : {o.get(c, '')}".rstrip() if o.get(c, "") == "" else
                     f"{c:<{width}} : {o[c]}")
    lines.append("")
with open("pslist-ja-JP.txt", "w", encoding="utf-8", newline="") as f:
    f.write("\r\n".join(lines) + "\r\n")

# Velociraptor Windows.Network.NetstatEnriched (JSONL): the Netstat row plus the process's
# Ppid, Path, CommandLine, Hash, Username and Authenticode. Shape learned from a real capture
# (shared/real-world/velociraptor-netstatenriched-wkst02.jsonl, not copied).
with open("velociraptor-enriched.jsonl", "w") as f:
    for p, l, lp, r, rp, s, pid, name, t in api:
        path = "" if name is None else "C:\\Windows\\System32\\" + name
        row = {"Pid": pid, "Ppid": 0 if pid in (0, 4) else 600, "Name": name or "",
               "Path": path, "CommandLine": path,
               "Hash": None if not path else {"MD5": "0" * 32, "SHA1": "0" * 40,
                                                "SHA256": "0" * 64},
               "Username": "NT AUTHORITY\\SYSTEM" if path else "",
               "Authenticode": None if not path else {"Filename": path, "Trusted": "trusted",
                                                       "_ExtraInfo": None},
               "Family": "IPv6" if ":" in l else "IPv4", "Type": p,
               "Status": STATUS[s] if s else "", "Laddr.IP": l, "Laddr.Port": lp,
               "Raddr.IP": r if r is not None else "", "Raddr.Port": rp or 0,
               "Timestamp": iso(t, digits=0)}
        f.write(json.dumps(row, separators=(",", ":")) + "\n")
