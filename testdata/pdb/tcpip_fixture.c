/* Synthetic tcpip globals for the `profile from-pdb --tcpip` test (public tcpip.pdb files hold
 * symbols only, no endpoint types). */
void *PartitionTable;
unsigned int PartitionCount;
void *TcpCompartmentSet;
void *UdpCompartmentSet;

int TcpipEntry(void) { return (int)PartitionCount + (PartitionTable != 0); }
