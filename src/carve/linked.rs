//! Records meet the table walk: which carved objects tcpip's tables link, and the objects only the
//! walk found, decoded by the same decoder as the carve's.
use crate::carve::decode::{decode, DecodeEnv, Decoded};
use crate::carve::pool::{check_header, Candidate, PoolHeader};
use crate::profile::{kind_fields, ObjectKind};
use crate::record::{flag, EndpointRecord, FoundBy, Hex};
use std::borrow::Cow;

/// An object a table links, read through the kernel's page tables.
#[derive(Clone, Debug)]
pub struct TableObject {
    /// Physical and virtual address of the pool header before the object.
    pub header_pa: u64,
    pub header_va: u64,
    pub kind: ObjectKind,
    /// The header carries one of the kind's tags.
    pub tagged: bool,
}

/// What the walk hands the carve.
#[derive(Clone, Debug, Default)]
pub struct TableFinds {
    pub objects: Vec<TableObject>,
    /// Kinds whose tables were walked completely.
    pub complete: Vec<ObjectKind>,
}

/// How the merge went: objects only the walk found, and entries that did not decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeCounts {
    pub only_in_tables: u64,
    pub undecodable: u64,
}

/// Marks `records` (sorted by physical offset and tag) with `found_by` and `linked`, and adds the
/// objects only the walk found. `None`: no table was walked, every record stays `linked: null`.
/// `corrupt` (with `--include-corrupt`) receives the walk-only objects that do not decode, with
/// their reason: a linked object whose pointers lead into lost media is still evidence.
pub fn merge(
    records: &mut Vec<EndpointRecord>,
    mut corrupt: Option<&mut Vec<EndpointRecord>>,
    finds: Option<&TableFinds>,
    env: &DecodeEnv,
) -> MergeCounts {
    let Some(finds) = finds else {
        return MergeCounts::default();
    };
    let mut counts = MergeCounts::default();
    let arch = env.profile.arch;
    let header_size = arch.pool_header_size() as usize;
    let mut in_tables = std::collections::HashSet::new();
    let mut extra = vec![];
    for o in &finds.objects {
        let carved = records
            .binary_search_by(|r| r.physical_offset.0.cmp(&o.header_pa))
            .ok()
            .filter(|&i| kind_of(&records[i], env) == Some(o.kind));
        if let Some(i) = carved {
            in_tables.insert(i);
            continue;
        }
        // Read only now, for the few objects the carve did not find.
        let Some(block) = read_block(o, env) else {
            counts.undecodable += 1;
            continue;
        };
        let Some(header) = block
            .get(..header_size)
            .and_then(|h| PoolHeader::parse(h, arch))
        else {
            counts.undecodable += 1;
            continue;
        };
        let needed = kind_fields(env.profile, o.kind).map_or(0, |k| k.body_offset + k.min_size);
        let header_ok = check_header(&header, o.header_pa, arch, needed).is_ok();
        let candidate = Candidate {
            offset: o.header_pa,
            kind: o.kind,
            header,
            body: Cow::Borrowed(&block[header_size..]),
        };
        match decode(&candidate, env) {
            Decoded::Valid(mut r, _) => {
                mark_walk_only(&mut r, o, header_ok, env);
                extra.push(r);
            }
            Decoded::Corrupt(mut r) => {
                counts.undecodable += 1;
                if let Some(corrupt) = corrupt.as_deref_mut() {
                    mark_walk_only(&mut r, o, header_ok, env);
                    corrupt.push(r);
                }
            }
        }
    }
    for (i, r) in records.iter_mut().enumerate() {
        if in_tables.contains(&i) {
            r.found_by = vec![FoundBy::Pool, FoundBy::Table];
            r.linked = Some(true);
        } else {
            let kind = kind_of(r, env);
            r.linked = kind
                .map(|k| finds.complete.contains(&k))
                .and_then(|c| c.then_some(false));
        }
    }
    counts.only_in_tables = extra.len() as u64;
    if !extra.is_empty() {
        records.append(&mut extra);
        records.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    }
    if let Some(corrupt) = corrupt {
        corrupt.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    }
    counts
}

/// What a record of an object only the walk found says: found by the table, linked, its kind's
/// tag where the bytes there are not one, `no_pool_tag` where the header fails the carve.
fn mark_walk_only(r: &mut EndpointRecord, o: &TableObject, header_ok: bool, env: &DecodeEnv) {
    if !o.tagged || !header_ok {
        r.flags.push(flag::NO_POOL_TAG.to_string());
        r.flags.sort();
        r.flags.dedup();
    }
    if !o.tagged {
        if let Some(k) = kind_fields(env.profile, o.kind) {
            r.tag = k.tags.first().cloned().unwrap_or(r.tag.clone());
        }
    }
    r.virtual_address = Some(Hex(o.header_va));
    r.found_by = vec![FoundBy::Table];
    r.linked = Some(true);
}

/// The pool header and body of a table object, read to the end of its pool block as the carve
/// reads (calibrated offsets may lie past the profile's span), within its page; the layout's span
/// when the header is no guide.
fn read_block(o: &TableObject, env: &DecodeEnv) -> Option<Vec<u8>> {
    let arch = env.profile.arch;
    let header = arch.pool_header_size();
    let k = kind_fields(env.profile, o.kind)?;
    let needed = header + k.body_offset + k.min_size;
    let claimed = PoolHeader::read_at(env.mem, o.header_va, arch)
        .map_or(0, |h| h.block_size.min(0x1000 - (o.header_va & 0xFFF)));
    let mut block = vec![0u8; claimed.max(needed) as usize];
    env.mem.read_into(o.header_va, &mut block).then_some(block)
}

/// A record's kind, by its tag.
fn kind_of(r: &EndpointRecord, env: &DecodeEnv) -> Option<ObjectKind> {
    ObjectKind::ALL
        .into_iter()
        .find(|&k| kind_fields(env.profile, k).is_some_and(|f| f.tags.contains(&r.tag)))
}
