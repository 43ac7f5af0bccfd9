<#
.SYNOPSIS
    netcarve live-response collector: writes the TCP and UDP endpoint tables, with their raw
    creation FILETIMEs, as netcarve capture JSON (docs/capture-format.md).
.DESCRIPTION
    Calls GetExtendedTcpTable(TCP_TABLE_OWNER_MODULE_ALL) and GetExtendedUdpTable(UDP_TABLE_OWNER_MODULE)
    for AF_INET and AF_INET6 and decodes the rows itself, so the creation times keep their 100 ns
    precision (zero stays 0 instead of becoming 1601-01-01 in some local time). Run it right before
    (or after) acquiring memory; `netcarve compare IMAGE --live capture.json` then compares the two.
    Works in Windows PowerShell 5.1 and PowerShell 7. Needs no administrator rights, but only an
    elevated shell sees every process name.
.EXAMPLE
    powershell -NoProfile -ExecutionPolicy Bypass -File collect.ps1 -Out E:\case42\capture.json
#>
param([string]$Out = "netcarve-capture.json")
$ErrorActionPreference = 'Stop'

Add-Type -TypeDefinition @'
using System;
using System.Runtime.InteropServices;
public static class NetcarveIpHelper {
    [DllImport("iphlpapi.dll")]
    static extern uint GetExtendedTcpTable(IntPtr table, ref int size, bool sort, int af, int tableClass, uint reserved);
    [DllImport("iphlpapi.dll")]
    static extern uint GetExtendedUdpTable(IntPtr table, ref int size, bool sort, int af, int tableClass, uint reserved);

    // The whole table as bytes: dwNumEntries (u32), padding to 8, then the rows.
    public static byte[] Read(bool tcp, int af) {
        const uint ErrorInsufficientBuffer = 122;
        int tableClass = tcp ? 8 : 2; // TCP_TABLE_OWNER_MODULE_ALL, UDP_TABLE_OWNER_MODULE
        int size = 0;
        for (int attempt = 0; attempt < 10; attempt++) {
            int allocated = size;
            IntPtr buffer = allocated > 0 ? Marshal.AllocHGlobal(allocated) : IntPtr.Zero;
            try {
                uint rc = tcp ? GetExtendedTcpTable(buffer, ref size, true, af, tableClass, 0)
                              : GetExtendedUdpTable(buffer, ref size, true, af, tableClass, 0);
                if (rc == 0 && allocated > 0) {
                    byte[] bytes = new byte[allocated];
                    Marshal.Copy(buffer, bytes, 0, allocated);
                    return bytes;
                }
                if (rc != 0 && rc != ErrorInsufficientBuffer) {
                    throw new System.ComponentModel.Win32Exception((int)rc);
                }
                // The table may grow between the two calls: ask again with room to spare.
                size = Math.Max(size, 8) + 4096;
            } finally {
                if (buffer != IntPtr.Zero) { Marshal.FreeHGlobal(buffer); }
            }
        }
        throw new InvalidOperationException("the endpoint table kept growing");
    }
}
'@

function U32([byte[]]$b, [int]$o) { [BitConverter]::ToUInt32($b, $o) }
# Ports sit in network byte order in the low 16 bits of a DWORD: bytes o (high) and o+1 (low).
function Port([byte[]]$b, [int]$o) { ([int]$b[$o] -shl 8) -bor [int]$b[$o + 1] }
function Addr([byte[]]$b, [int]$o, [int]$len) {
    $raw = New-Object byte[] $len
    [Array]::Copy($b, $o, $raw, 0, $len)
    (New-Object System.Net.IPAddress -ArgumentList (, $raw)).ToString()
}
function FileTime([byte[]]$b, [int]$o) { [BitConverter]::ToUInt64($b, $o) }

# Owner names by PID, read once (a process that exits meanwhile simply has no name).
$names = @{}
foreach ($p in Get-Process) {
    $name = $p.ProcessName
    try { if ($p.Path) { $name = [System.IO.Path]::GetFileName($p.Path) } } catch { }
    $names[[uint32]$p.Id] = $name
}
function Owner([uint32]$processId) { if ($names.ContainsKey($processId)) { $names[$processId] } else { $null } }

$collected = [DateTime]::UtcNow.ToFileTimeUtc()
$tcp = New-Object System.Collections.ArrayList
$udp = New-Object System.Collections.ArrayList

foreach ($af in 2, 23) {
    $v6 = $af -eq 23
    $family = if ($v6) { 'ipv6' } else { 'ipv4' }

    # MIB_TCPROW_OWNER_MODULE (0xA0) / MIB_TCP6ROW_OWNER_MODULE (0xC0)
    $b = [NetcarveIpHelper]::Read($true, $af)
    $count = U32 $b 0
    $rowSize = if ($v6) { 0xC0 } else { 0xA0 }
    for ($i = 0; $i -lt $count; $i++) {
        $r = 8 + $i * $rowSize
        if ($v6) {
            $row = [ordered]@{ family = $family; state = U32 $b ($r + 0x30)
                local_addr = Addr $b $r 16; local_port = Port $b ($r + 0x14)
                remote_addr = Addr $b ($r + 0x18) 16; remote_port = Port $b ($r + 0x2C)
                pid = U32 $b ($r + 0x34); create_time_raw = FileTime $b ($r + 0x38) }
        } else {
            $row = [ordered]@{ family = $family; state = U32 $b $r
                local_addr = Addr $b ($r + 4) 4; local_port = Port $b ($r + 8)
                remote_addr = Addr $b ($r + 0xC) 4; remote_port = Port $b ($r + 0x10)
                pid = U32 $b ($r + 0x14); create_time_raw = FileTime $b ($r + 0x18) }
        }
        $row.process = Owner $row.pid
        [void]$tcp.Add($row)
    }

    # MIB_UDPROW_OWNER_MODULE (0xA0) / MIB_UDP6ROW_OWNER_MODULE (0xB0)
    $b = [NetcarveIpHelper]::Read($false, $af)
    $count = U32 $b 0
    $rowSize = if ($v6) { 0xB0 } else { 0xA0 }
    for ($i = 0; $i -lt $count; $i++) {
        $r = 8 + $i * $rowSize
        if ($v6) {
            $row = [ordered]@{ family = $family; local_addr = Addr $b $r 16; local_port = Port $b ($r + 0x14)
                pid = U32 $b ($r + 0x18); create_time_raw = FileTime $b ($r + 0x20) }
        } else {
            $row = [ordered]@{ family = $family; local_addr = Addr $b $r 4; local_port = Port $b ($r + 4)
                pid = U32 $b ($r + 8); create_time_raw = FileTime $b ($r + 0x10) }
        }
        $row.process = Owner $row.pid
        [void]$udp.Add($row)
    }
}

$capture = [ordered]@{
    format             = 'netcarve-capture'
    version            = 1
    host               = $env:COMPUTERNAME
    collected_raw      = $collected
    collected          = [DateTime]::FromFileTimeUtc($collected).ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'")
    utc_offset_minutes = [int][TimeZoneInfo]::Local.GetUtcOffset([DateTime]::UtcNow).TotalMinutes
    tcp                = $tcp.ToArray()
    udp                = $udp.ToArray()
}
$json = ConvertTo-Json -InputObject $capture -Depth 4
# UTF-8 without BOM, whatever the PowerShell version's default.
[System.IO.File]::WriteAllText($Out, $json, (New-Object System.Text.UTF8Encoding $false))
Write-Host ("netcarve capture: {0} TCP and {1} UDP endpoints -> {2}" -f $tcp.Count, $udp.Count, $Out)
