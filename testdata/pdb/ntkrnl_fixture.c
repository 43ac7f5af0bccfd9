/* Synthetic kernel types for the `profile from-pdb` test: the structures netcarve reads, at the
 * Windows 10 19041 x64 offsets, padded with byte arrays. Our own declarations (no Microsoft
 * header); the offsets are asserted below so the PDB can only hold the declared numbers. */
#include <stddef.h>
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

typedef struct _LIST_ENTRY { struct _LIST_ENTRY *Flink, *Blink; } LIST_ENTRY;
typedef union _LARGE_INTEGER { struct { u32 LowPart; int HighPart; }; long long QuadPart; } LARGE_INTEGER;
typedef struct _KSYSTEM_TIME { u32 LowPart; int High1Time; int High2Time; } KSYSTEM_TIME;

/* Type sits in an anonymous union, as in real kernels: the reader must look through it. */
typedef struct _DISPATCHER_HEADER {
    union {
        struct { u8 Type; u8 Signalling; u8 Size; u8 Reserved1; };
        volatile int Lock;
    };
    int SignalState;
    LIST_ENTRY WaitListHead;
} DISPATCHER_HEADER;

typedef struct _KPROCESS {
    DISPATCHER_HEADER Header;          /* 0x0 */
    u8 _pad0[0x28 - 0x18];
    u64 DirectoryTableBase;            /* 0x28 */
    u8 _pad1[0x438 - 0x30];
} KPROCESS;

typedef struct _EPROCESS {
    KPROCESS Pcb;                      /* 0x0 */
    u8 _pad0[0x440 - 0x438];
    void *UniqueProcessId;             /* 0x440 */
    LIST_ENTRY ActiveProcessLinks;     /* 0x448 */
    u8 _pad1[0x468 - 0x458];
    LARGE_INTEGER CreateTime;          /* 0x468 */
    u8 _pad2[0x540 - 0x470];
    void *InheritedFromUniqueProcessId;/* 0x540 */
    u8 _pad3[0x5a8 - 0x548];
    u8 ImageFileName[15];              /* 0x5a8 */
    u8 _pad4[0x840 - 0x5b7];
    LARGE_INTEGER ExitTime;            /* 0x840 */
    u8 _pad5[0xa40 - 0x848];
} EPROCESS;

typedef struct _OBJECT_HEADER {
    long long PointerCount;            /* 0x0 */
    long long HandleCount;             /* 0x8 */
    void *Lock;                        /* 0x10 */
    u8 TypeIndex;                      /* 0x18 */
    u8 TraceFlags;
    u8 InfoMask;
    u8 Flags;
    u32 Reserved;
    void *ObjectCreateInfo;            /* 0x20 */
    void *SecurityDescriptor;          /* 0x28 */
    long long Body;                    /* 0x30 (QUAD in real kernels) */
} OBJECT_HEADER;

typedef struct _KUSER_SHARED_DATA {
    u32 TickCountLowDeprecated;        /* 0x0 */
    u32 TickCountMultiplier;           /* 0x4 */
    volatile KSYSTEM_TIME InterruptTime;/* 0x8 */
    volatile KSYSTEM_TIME SystemTime;  /* 0x14 */
    volatile KSYSTEM_TIME TimeZoneBias;/* 0x20 */
    u8 _pad0[0x260 - 0x2c];
    u32 NtBuildNumber;                 /* 0x260 */
    int NtProductType;                 /* 0x264 */
    u8 ProductTypeIsValid;             /* 0x268 */
    u8 Reserved0;
    u16 NativeProcessorArchitecture;   /* 0x26a */
    u32 NtMajorVersion;                /* 0x26c */
    u32 NtMinorVersion;                /* 0x270 */
    u8 _pad1[0x720 - 0x274];
} KUSER_SHARED_DATA;

_Static_assert(offsetof(EPROCESS, UniqueProcessId) == 0x440, "UniqueProcessId");
_Static_assert(offsetof(EPROCESS, ActiveProcessLinks) == 0x448, "ActiveProcessLinks");
_Static_assert(offsetof(EPROCESS, CreateTime) == 0x468, "CreateTime");
_Static_assert(offsetof(EPROCESS, InheritedFromUniqueProcessId) == 0x540, "Inherited");
_Static_assert(offsetof(EPROCESS, ImageFileName) == 0x5a8, "ImageFileName");
_Static_assert(offsetof(EPROCESS, ExitTime) == 0x840, "ExitTime");
_Static_assert(sizeof(EPROCESS) == 0xa40, "EPROCESS size");
_Static_assert(offsetof(KPROCESS, DirectoryTableBase) == 0x28, "DirectoryTableBase");
_Static_assert(offsetof(OBJECT_HEADER, TypeIndex) == 0x18, "TypeIndex");
_Static_assert(offsetof(OBJECT_HEADER, Body) == 0x30, "Body");
_Static_assert(offsetof(KUSER_SHARED_DATA, SystemTime) == 0x14, "SystemTime");
_Static_assert(offsetof(KUSER_SHARED_DATA, NtBuildNumber) == 0x260, "NtBuildNumber");
_Static_assert(offsetof(KUSER_SHARED_DATA, NtMinorVersion) == 0x270, "NtMinorVersion");

/* Globals: their RVAs become the profile's symbols; the type anchors make the compiler emit the
 * structs into the PDB. */
LIST_ENTRY PsActiveProcessHead;
LIST_ENTRY PsLoadedModuleList;
u8 KdVersionBlock[0x28];
EPROCESS EprocessTypeAnchor;
OBJECT_HEADER ObjectHeaderTypeAnchor;
KUSER_SHARED_DATA KuserTypeAnchor;

int KiSystemStartup(void) { return (int)(long long)PsActiveProcessHead.Flink + KdVersionBlock[0]; }
