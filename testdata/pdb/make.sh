#!/bin/sh
# Rebuilds the committed PDB fixtures (CI does not run this; the .pdb files are the fixtures).
# Toolchain, as installed on Debian 12:
#   apt-get update && apt-get install -y clang lld llvm
set -eu
cd "$(dirname "$0")"
for name in ntkrnl_fixture tcpip_fixture; do
    clang --target=x86_64-pc-windows-msvc -gcodeview -g -O0 -ffreestanding -fno-stack-protector \
        -c "$name.c" -o "$name.obj"
done
lld-link /DEBUG /NODEFAULTLIB /ENTRY:KiSystemStartup /SUBSYSTEM:NATIVE /DRIVER /MACHINE:X64 \
    /OUT:ntkrnl_fixture.exe /PDB:ntkrnl_fixture.pdb /PDBALTPATH:ntkrnlmp.pdb ntkrnl_fixture.obj
lld-link /DEBUG /NODEFAULTLIB /ENTRY:TcpipEntry /SUBSYSTEM:NATIVE /DRIVER /MACHINE:X64 \
    /OUT:tcpip_fixture.sys /PDB:tcpip_fixture.pdb /PDBALTPATH:tcpip.pdb tcpip_fixture.obj
rm -f ./*.obj ntkrnl_fixture.exe tcpip_fixture.sys
ls -l ./*.pdb
