//! The event log of the embedded store: every accepted event with its
//! decision, appended once to segment files and never rewritten.
//!
//! ## Why not a SQLite table
//!
//! Under HTTP load a group commit holds one or two events. In a SQLite table
//! each such commit wrote whole 4 KiB pages to the WAL (the table's last
//! leaf, one leaf of the `event_id` index, one leaf of the account index,
//! both on random keys) and the checkpoint wrote them again: about 12 KB
//! per event, and the checkpoints were in the latency tail
//! (BENCHMARKS.md, "Bytes written per event"). Here a commit writes the
//! group's bytes, rounded to the disk's block (512 bytes on most disks),
//! and nothing else: the lookups are kept in memory and rebuilt from the
//! log when the store opens.
//!
//! ## Format
//!
//! A directory of segments, each named after the first `seq` it holds
//! (`00000000000000000001.log`), each at most about [`SEGMENT_BYTES`]. A
//! segment is a sequence of frames, one per group commit:
//!
//! ```text
//! frame  = body_len: u32 | crc32(body): u32 | body
//! body   = count: u32 | count × (record_len: u32 | record)
//! record = seq: u64 | event_time: i64 | received_at_ms: i64
//!        | event_id, account_id, event_type: (len: u16 | utf-8)
//!        | event, decision: (len: u32 | compressed text, see `compress`)
//! ```
//!
//! All integers little-endian. A frame whose length is zero, or that runs
//! past the end of the file, ends the segment. The checksum covers the whole
//! group, so a group is stored whole or not at all.
//!
//! ## Durability
//!
//! A commit writes its frame and then `fdatasync`s the file; only then does
//! `append` return and do readers see the records. Writes bypass the page
//! cache where the filesystem allows it (`O_DIRECT`): the block holding
//! the end of the log is written again, with the same bytes before the end,
//! at every commit. Like SQLite's WAL, this assumes that the disk does not
//! damage the unchanged bytes of a block it rewrites ("powersafe
//! overwrite"); the checksum detects it if it does.
//!
//! When the store opens, every segment is read and checked. A bad frame at
//! the end of the last segment is a commit that was under way when the
//! process or machine stopped, never acknowledged: it is cut off. A bad
//! frame anywhere else is damage, and the store refuses to open.
//!
//! ## Lookups
//!
//! By `seq`, by event id and by account, from an index in memory (about 40
//! bytes per event). Ids and accounts are kept as 64-bit hashes; a record
//! found through a hash is compared with the id or account asked for.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use foldhash::fast::FixedState;

use crate::{NewRecord, StoreError, StoreResult, StoredRecord, compress};

/// A segment is closed once a commit takes it past this size.
pub(crate) const SEGMENT_BYTES: u64 = 64 << 20;

/// Length and checksum before each frame's body.
const FRAME_HEADER: usize = 8;

/// The write buffer of direct writes, kept between commits; a larger
/// group gets a larger one for its commit.
const TAIL_BUFFER_BYTES: usize = 64 << 10;

/// The largest block a direct write is rounded to.
const MAX_BLOCK: u64 = 4096;

/// Alignment of the write buffer in memory: enough for any block size.
const BUFFER_ALIGN: usize = 4096;

/// Read buffer of scans: 32 KiB holds about 150 records.
const READ_BUFFER_BYTES: usize = 32 << 10;

/// Records copied out of the index per hold of its lock during scans, so
/// that a long scan never holds a commit back for long.
const SCAN_PAGE: usize = 4096;

fn io(context: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn hash(text: &str) -> u64 {
    // Only in memory, so the seed need not be stable across versions.
    std::hash::BuildHasher::hash_one(&FixedState::with_seed(0x0C05_7051_06A1_0001), text)
}

/// Where a record is: segment number (index into the segment list), offset
/// of its `record_len` field, and its length after that field.
#[derive(Debug, Clone, Copy)]
struct Location {
    segment: u32,
    offset: u32,
    len: u32,
}

#[derive(Default)]
struct Index {
    /// In log order, one per record.
    seqs: Vec<u64>,
    locations: Vec<Location>,
    /// Event-id hash to the record's position in `seqs`.
    by_id: HashMap<u64, u32, FixedState>,
    /// Further records under an id hash already in `by_id` (a collision).
    more_by_id: HashMap<u64, Vec<u32>, FixedState>,
    /// Account hash to its records' positions, ascending.
    by_account: HashMap<u64, Vec<u32>, FixedState>,
}

impl Index {
    /// Bytes the index holds on the heap, about: what the log costs in
    /// memory, logged at open.
    fn heap_bytes(&self) -> usize {
        let map_entry = |key: usize, value: usize| key + value + 1;
        self.seqs.capacity() * 8
            + self.locations.capacity() * std::mem::size_of::<Location>()
            + self.by_id.capacity() * map_entry(8, 4)
            + self.more_by_id.capacity() * map_entry(8, 24)
            + self.by_account.capacity() * map_entry(8, 24)
            + self
                .by_account
                .values()
                .map(|positions| positions.capacity() * 4)
                .sum::<usize>()
    }

    fn add(&mut self, seq: u64, event_id: &str, account_id: &str, location: Location) {
        let position = self.seqs.len() as u32;
        self.seqs.push(seq);
        self.locations.push(location);
        match self.by_id.entry(hash(event_id)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(position);
            }
            std::collections::hash_map::Entry::Occupied(slot) => {
                self.more_by_id
                    .entry(*slot.key())
                    .or_default()
                    .push(position);
            }
        }
        self.by_account
            .entry(hash(account_id))
            .or_default()
            .push(position);
    }

    fn id_candidates(&self, event_id: &str) -> Vec<Location> {
        let h = hash(event_id);
        let mut found = Vec::new();
        if let Some(&p) = self.by_id.get(&h) {
            found.push(self.locations[p as usize]);
            if let Some(more) = self.more_by_id.get(&h) {
                found.extend(more.iter().map(|&p| self.locations[p as usize]));
            }
        }
        found
    }

    /// Position of the first record with a seq above `seq`.
    fn after(&self, seq: u64) -> usize {
        self.seqs.partition_point(|&s| s <= seq)
    }
}

/// A segment's file, opened for reading.
struct Segment {
    path: PathBuf,
    file: Arc<File>,
}

/// A buffer whose start is aligned for `O_DIRECT`, made from a plain
/// vector (no unsafe code): the usable part starts where the vector's
/// memory is aligned.
struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn with_capacity(capacity: usize) -> AlignedBuf {
        let raw = vec![0u8; capacity + BUFFER_ALIGN];
        let start = raw.as_ptr().align_offset(BUFFER_ALIGN);
        AlignedBuf { raw, start }
    }

    fn capacity(&self) -> usize {
        self.raw.len() - BUFFER_ALIGN
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let start = self.start;
        let cap = self.capacity();
        &mut self.raw[start..start + cap]
    }

    fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.capacity()]
    }
}

/// The segment being appended to.
struct Writer {
    file: File,
    path: PathBuf,
    segment: u32,
    /// Logical end of the segment: where the next frame goes.
    end: u64,
    /// Writes go through `O_DIRECT` in whole blocks of `block` bytes.
    direct: bool,
    block: usize,
    /// When `direct`: the bytes of the segment from the block holding `end`
    /// (`end` rounded down to `block`) up to `end`, then room for a frame.
    tail: AlignedBuf,
    /// The frame being built.
    frame: Vec<u8>,
}

pub(crate) struct EventLog {
    dir: PathBuf,
    /// Held open with an exclusive lock while the log is open, so that a
    /// second process never appends beside this one (nor cuts off, as an
    /// unfinished commit, a frame this one is writing).
    _lock: DirLock,
    /// [`SEGMENT_BYTES`], smaller in tests.
    segment_bytes: u64,
    writer: Mutex<Writer>,
    index: RwLock<Index>,
    segments: RwLock<Vec<Segment>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

/// Fsyncs a directory, so that a file created in it survives a power cut.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens `path` for appending, with `O_DIRECT` where the platform and the
/// filesystem allow it.
fn open_for_writing(path: &Path) -> std::io::Result<(File, bool)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path);
        match direct {
            Ok(file) => return Ok((file, true)),
            // Filesystems without O_DIRECT answer EINVAL; fall back below.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    Ok((file, false))
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_write(buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// A record's fields as stored, borrowed from a read buffer.
struct RawRecord<'a> {
    seq: u64,
    event_time: i64,
    received_at_ms: i64,
    event_id: &'a str,
    account_id: &'a str,
    event_type: &'a str,
    event: &'a [u8],
    decision: &'a [u8],
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn text16(&mut self) -> Option<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn bytes32(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

fn parse_record(bytes: &[u8]) -> Option<RawRecord<'_>> {
    let mut c = Cursor { bytes, at: 0 };
    let record = RawRecord {
        seq: c.u64()?,
        event_time: c.u64()? as i64,
        received_at_ms: c.u64()? as i64,
        event_id: c.text16()?,
        account_id: c.text16()?,
        event_type: c.text16()?,
        event: c.bytes32()?,
        decision: c.bytes32()?,
    };
    (c.at == bytes.len()).then_some(record)
}

fn decode(raw: &RawRecord<'_>) -> StoreResult<StoredRecord> {
    Ok(StoredRecord {
        seq: raw.seq,
        event_id: raw.event_id.to_string(),
        account_id: raw.account_id.to_string(),
        event_type: raw.event_type.to_string(),
        event_time: raw.event_time,
        received_at_ms: raw.received_at_ms,
        event_json: compress::decompress_record(raw.event).map_err(io("read an event"))?,
        decision_json: compress::decompress_record(raw.decision).map_err(io("read a decision"))?,
    })
}

fn push_text16(out: &mut Vec<u8>, text: &str, field: &'static str) -> StoreResult<()> {
    let len = u16::try_from(text.len()).map_err(|_| {
        StoreError::backend(
            "append",
            format!(
                "{field} is {} bytes; the log holds at most 65535",
                text.len()
            ),
        )
    })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn push_bytes32(out: &mut Vec<u8>, bytes: &[u8]) -> StoreResult<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| StoreError::backend("append", "a record of 4 GiB or more"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Frames and checks read back from one segment.
struct SegmentScan {
    /// Where the valid frames end.
    end: u64,
    /// The file is longer than `end` and what follows is not zeros: a
    /// frame that did not verify.
    damaged_tail: bool,
}

/// Reads every frame of `file`, calling `visit` for each record with its
/// offset and length.
fn scan_segment(
    file: &File,
    mut visit: impl FnMut(RawRecord<'_>, u32, u32) -> StoreResult<()>,
) -> StoreResult<SegmentScan> {
    let len = file.metadata().map_err(io("open the event log"))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(io("open the event log"))?;
    let mut at = 0u64;
    let mut body = Vec::new();
    loop {
        if at + FRAME_HEADER as u64 > len {
            return Ok(SegmentScan {
                end: at,
                damaged_tail: !rest_is_zero(&mut reader, len - at)?,
            });
        }
        let mut header = [0u8; FRAME_HEADER];
        reader
            .read_exact(&mut header)
            .map_err(io("open the event log"))?;
        let body_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as u64;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let frame_end = at + FRAME_HEADER as u64 + body_len;
        if body_len == 0 || frame_end > len {
            let zero_header = header.iter().all(|&b| b == 0);
            let rest_zero = rest_is_zero(&mut reader, len - at - FRAME_HEADER as u64)?;
            return Ok(SegmentScan {
                end: at,
                damaged_tail: !(zero_header && rest_zero),
            });
        }
        body.resize(body_len as usize, 0);
        reader
            .read_exact(&mut body)
            .map_err(io("open the event log"))?;
        if crc32fast::hash(&body) != crc {
            // A commit cut short leaves nothing after its own write. Frames
            // past this one's extent mean the damage is in the middle of
            // the log: not something to cut off quietly.
            let extent = frame_end.div_ceil(MAX_BLOCK) * MAX_BLOCK;
            if extent < len {
                reader
                    .seek(SeekFrom::Start(extent))
                    .map_err(io("open the event log"))?;
                if !rest_is_zero(&mut reader, len - extent)? {
                    return Err(corrupt(
                        at,
                        "the frame does not verify and frames follow it",
                    ));
                }
            }
            return Ok(SegmentScan {
                end: at,
                damaged_tail: true,
            });
        }
        let mut c = Cursor {
            bytes: &body,
            at: 0,
        };
        let count = c.u32().unwrap_or(0);
        for _ in 0..count {
            let Some(record_len) = c.u32() else {
                return Err(corrupt(at, "a record runs past its frame"));
            };
            let offset = at + FRAME_HEADER as u64 + c.at as u64 - 4;
            let Some(bytes) = c.take(record_len as usize) else {
                return Err(corrupt(at, "a record runs past its frame"));
            };
            let Some(raw) = parse_record(bytes) else {
                return Err(corrupt(at, "a record does not parse"));
            };
            visit(raw, offset as u32, record_len)?;
        }
        at = frame_end;
    }
}

fn corrupt(offset: u64, problem: &str) -> StoreError {
    StoreError::backend(
        "open the event log",
        format!("frame at offset {offset}: {problem}"),
    )
}

fn rest_is_zero(reader: &mut impl Read, mut left: u64) -> StoreResult<bool> {
    let mut buf = [0u8; 8192];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        reader
            .read_exact(&mut buf[..n])
            .map_err(io("open the event log"))?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}

/// Lock files held by this process, by directory, with how many open logs
/// share each.
static HELD_LOCKS: Mutex<Vec<(PathBuf, File, usize)>> = Mutex::new(Vec::new());

/// This process's hold on a log directory's lock file; released when the
/// last open log of that directory in this process is dropped.
struct DirLock(PathBuf);

impl Drop for DirLock {
    fn drop(&mut self) {
        let mut held = lock(&HELD_LOCKS);
        if let Some(i) = held.iter().position(|(dir, _, _)| *dir == self.0) {
            held[i].2 -= 1;
            if held[i].2 == 0 {
                // Closing the file releases the lock.
                held.swap_remove(i);
            }
        }
    }
}

/// Takes the log's lock file (`LOCK` in `dir`), or fails at once when
/// another process holds it. Within one process the lock is shared: a
/// store reopened before the previous handle is dropped (a restart in
/// tests) is let through.
fn lock_dir(dir: &Path) -> StoreResult<DirLock> {
    let dir = dir.canonicalize().map_err(io("lock the event log"))?;
    let mut held = lock(&HELD_LOCKS);
    if let Some(entry) = held.iter_mut().find(|(d, _, _)| *d == dir) {
        entry.2 += 1;
        return Ok(DirLock(dir));
    }
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("lock the event log"))?;
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{FlockOperation, flock};
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            return Err(StoreError::backend(
                "lock the event log",
                format!(
                    "{} is held by another process ({e}): a server or another command runs on \
                     this data directory; stop it first",
                    path.display()
                ),
            ));
        }
    }
    held.push((dir.clone(), file, 1));
    Ok(DirLock(dir))
}

/// The segment files of the log in `dir` with their first seqs, in order.
fn segment_files(dir: &Path) -> StoreResult<Vec<(u64, PathBuf)>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("open the event log"))? {
        let entry = entry.map_err(io("open the event log"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = name
            .strip_suffix(".log")
            .and_then(|n| n.parse::<u64>().ok())
        {
            names.push((first, entry.path()));
        }
    }
    names.sort();
    Ok(names)
}

/// A frame that does not verify in a segment other than the last: no commit
/// under way can have left it there.
fn damaged_before_last(context: &'static str, segment: &Path, offset: u64) -> StoreError {
    StoreError::backend(
        context,
        format!(
            "{}: damaged frame at offset {offset} before the last segment",
            segment.display()
        ),
    )
}

/// Reads the committed records of the log in `dir` in order, changing
/// nothing: a server may be appending to it meanwhile. Reading stops at
/// the first frame of the last segment that does not verify (a commit
/// under way); one in an earlier segment is an error. A missing directory
/// is an empty log. Returns how many records were visited.
pub(crate) fn read_committed(
    dir: &Path,
    visit: &mut dyn FnMut(RawRecordView<'_>) -> StoreResult<()>,
) -> StoreResult<u64> {
    if !dir.is_dir() {
        return Ok(0);
    }
    let names = segment_files(dir)?;
    let count = names.len();
    let mut visited = 0u64;
    for (i, (_, path)) in names.iter().enumerate() {
        let file = File::open(path).map_err(io("read the event log"))?;
        let scan = scan_segment(&file, |raw, _, _| {
            visited += 1;
            visit(RawRecordView(raw))
        })?;
        if scan.damaged_tail && i + 1 < count {
            return Err(damaged_before_last("read the event log", path, scan.end));
        }
    }
    Ok(visited)
}

impl EventLog {
    /// Opens the log in `dir`, creating it if needed; reads and checks every
    /// segment and builds the index.
    pub(crate) fn open(dir: &Path) -> StoreResult<EventLog> {
        EventLog::open_with(dir, SEGMENT_BYTES, false)
    }

    /// Opens the log in `dir` emptied: its segments, if any, are deleted
    /// once the lock is held.
    pub(crate) fn open_emptied(dir: &Path) -> StoreResult<EventLog> {
        EventLog::open_with(dir, SEGMENT_BYTES, true)
    }

    fn open_with(dir: &Path, segment_bytes: u64, emptied: bool) -> StoreResult<EventLog> {
        let started = std::time::Instant::now();
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io("create the event log"))?;
            // The directory's own entry must survive a power cut too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(io("create the event log"))?;
            }
        }
        let lock = lock_dir(dir)?;
        if emptied {
            for (_, path) in segment_files(dir)? {
                fs::remove_file(&path).map_err(io("empty the event log"))?;
            }
            sync_dir(dir).map_err(io("empty the event log"))?;
        }
        let names = segment_files(dir)?;
        let mut index = Index::default();
        let mut segments = Vec::new();
        let mut last_end = 0u64;
        let count = names.len();
        for (i, (_, path)) in names.into_iter().enumerate() {
            let file = File::open(&path).map_err(io("open the event log"))?;
            let segment = i as u32;
            let mut last_seq = index.seqs.last().copied().unwrap_or(0);
            let scan = scan_segment(&file, |raw, offset, len| {
                if raw.seq <= last_seq {
                    return Err(StoreError::backend(
                        "open the event log",
                        format!("{}: seq {} follows seq {last_seq}", path.display(), raw.seq),
                    ));
                }
                last_seq = raw.seq;
                index.add(
                    raw.seq,
                    raw.event_id,
                    raw.account_id,
                    Location {
                        segment,
                        offset,
                        len,
                    },
                );
                Ok(())
            })
            .map_err(|e| match e {
                StoreError::Backend { context, source } => {
                    StoreError::backend(context, format!("{}: {source}", path.display()))
                }
                other => other,
            })?;
            let last = i + 1 == count;
            if scan.damaged_tail && !last {
                return Err(damaged_before_last("open the event log", &path, scan.end));
            }
            if last {
                last_end = scan.end;
                if scan.damaged_tail {
                    tracing::warn!(
                        segment = %path.display(),
                        offset = scan.end,
                        "cut off an unfinished commit at the end of the event log"
                    );
                }
            }
            segments.push(Segment {
                path,
                file: Arc::new(file),
            });
        }
        let writer = match segments.last() {
            Some(segment) => {
                let (file, direct) =
                    open_for_writing(&segment.path).map_err(io("open the event log"))?;
                // Whatever lies past the last good frame goes, so that a
                // later frame is never followed by stale bytes.
                file.set_len(last_end).map_err(io("open the event log"))?;
                file.sync_all().map_err(io("open the event log"))?;
                Writer::new(
                    file,
                    segment.path.clone(),
                    segments.len() as u32 - 1,
                    last_end,
                    direct,
                )?
            }
            None => {
                let path = dir.join(segment_name(1));
                let (file, direct) = open_for_writing(&path).map_err(io("create the event log"))?;
                sync_dir(dir).map_err(io("create the event log"))?;
                let read = File::open(&path).map_err(io("create the event log"))?;
                segments.push(Segment {
                    path: path.clone(),
                    file: Arc::new(read),
                });
                Writer::new(file, path, 0, 0, direct)?
            }
        };
        tracing::info!(
            records = index.seqs.len(),
            segments = segments.len(),
            index_bytes = index.heap_bytes(),
            direct = writer.direct,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "event log opened"
        );
        Ok(EventLog {
            dir: dir.to_path_buf(),
            _lock: lock,
            segment_bytes,
            writer: Mutex::new(writer),
            index: RwLock::new(index),
            segments: RwLock::new(segments),
        })
    }

    /// Appends one group durably; see [`crate::EventStore::append`].
    pub(crate) fn append(&self, records: &[NewRecord<'_>]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut writer = lock(&self.writer);
        self.check_new(records)?;
        // The frame: header, count, then each record with its length.
        let mut frame = std::mem::take(&mut writer.frame);
        frame.clear();
        frame.extend_from_slice(&[0u8; FRAME_HEADER]);
        frame.extend_from_slice(&(records.len() as u32).to_le_bytes());
        let mut offsets = Vec::with_capacity(records.len());
        for r in records {
            let start = frame.len();
            frame.extend_from_slice(&[0u8; 4]);
            frame.extend_from_slice(&r.seq.to_le_bytes());
            frame.extend_from_slice(&r.event_time.to_le_bytes());
            frame.extend_from_slice(&r.received_at_ms.to_le_bytes());
            push_text16(&mut frame, r.event_id, "event_id")?;
            push_text16(&mut frame, r.account_id, "account_id")?;
            push_text16(&mut frame, r.event_type, "event_type")?;
            let event = compress::compress_record(r.event_json).map_err(io("compress an event"))?;
            push_bytes32(&mut frame, &event)?;
            let decision =
                compress::compress_record(r.decision_json).map_err(io("compress a decision"))?;
            push_bytes32(&mut frame, &decision)?;
            let len = (frame.len() - start - 4) as u32;
            frame[start..start + 4].copy_from_slice(&len.to_le_bytes());
            offsets.push((start, len));
        }
        let body_len = u32::try_from(frame.len() - FRAME_HEADER)
            .map_err(|_| StoreError::backend("append", "a group of 4 GiB or more"))?;
        let crc = crc32fast::hash(&frame[FRAME_HEADER..]);
        frame[0..4].copy_from_slice(&body_len.to_le_bytes());
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        // Offsets are 32-bit: a segment closes well before 4 GiB.
        let full = writer.end >= self.segment_bytes
            || writer.end + frame.len() as u64 > u64::from(u32::MAX);
        if writer.end > 0 && full {
            self.roll(&mut writer, records[0].seq)?;
        }
        let start = writer.end;
        let result = writer.write_frame(&frame);
        writer.frame = frame;
        result?;
        let segment = writer.segment;
        let mut index = write_lock(&self.index);
        for (r, (offset, len)) in records.iter().zip(offsets) {
            index.add(
                r.seq,
                r.event_id,
                r.account_id,
                Location {
                    segment,
                    offset: (start + offset as u64) as u32,
                    len,
                },
            );
        }
        Ok(())
    }

    /// Refuses a group with a seq not above the last, or an id already
    /// stored or repeated within it.
    fn check_new(&self, records: &[NewRecord<'_>]) -> StoreResult<()> {
        let index = read_lock(&self.index);
        let mut last = index.seqs.last().copied().unwrap_or(0);
        // Only a group of several can repeat an id within itself; a
        // one-event commit (the usual one under HTTP load) allocates nothing.
        let mut ids = std::collections::HashSet::new();
        for r in records {
            let duplicate = || StoreError::Duplicate {
                event_id: r.event_id.to_string(),
                seq: r.seq,
            };
            if r.seq <= last || (records.len() > 1 && !ids.insert(r.event_id)) {
                return Err(duplicate());
            }
            last = r.seq;
            for location in index.id_candidates(r.event_id) {
                let bytes = self.read_bytes(location)?;
                if parse_record(&bytes).is_some_and(|raw| raw.event_id == r.event_id) {
                    return Err(duplicate());
                }
            }
        }
        Ok(())
    }

    /// Closes the current segment and starts one whose first seq is
    /// `first_seq`.
    fn roll(&self, writer: &mut Writer, first_seq: u64) -> StoreResult<()> {
        let path = self.dir.join(segment_name(first_seq));
        let (file, direct) = open_for_writing(&path).map_err(io("start a log segment"))?;
        sync_dir(&self.dir).map_err(io("start a log segment"))?;
        let read = File::open(&path).map_err(io("start a log segment"))?;
        let mut segments = write_lock(&self.segments);
        segments.push(Segment {
            path: path.clone(),
            file: Arc::new(read),
        });
        *writer = Writer::new(file, path, segments.len() as u32 - 1, 0, direct)?;
        Ok(())
    }

    fn read_bytes(&self, location: Location) -> StoreResult<Vec<u8>> {
        let file = {
            let segments = read_lock(&self.segments);
            let Some(segment) = segments.get(location.segment as usize) else {
                return Err(StoreError::backend("read the log", "unknown segment"));
            };
            Arc::clone(&segment.file)
        };
        let mut bytes = vec![0u8; location.len as usize];
        read_at(&file, &mut bytes, u64::from(location.offset) + 4).map_err(io("read the log"))?;
        Ok(bytes)
    }

    fn read(&self, location: Location) -> StoreResult<StoredRecord> {
        let bytes = self.read_bytes(location)?;
        let raw = parse_record(&bytes)
            .ok_or_else(|| StoreError::backend("read the log", "a record does not parse"))?;
        decode(&raw)
    }

    pub(crate) fn get_event(&self, event_id: &str) -> StoreResult<Option<StoredRecord>> {
        let candidates = read_lock(&self.index).id_candidates(event_id);
        for location in candidates {
            let record = self.read(location)?;
            if record.event_id == event_id {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    pub(crate) fn account_events(
        &self,
        account_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredRecord>> {
        let locations: Vec<Location> = {
            let index = read_lock(&self.index);
            match index.by_account.get(&hash(account_id)) {
                Some(positions) => positions
                    .iter()
                    .rev()
                    .map(|&p| index.locations[p as usize])
                    .collect(),
                None => Vec::new(),
            }
        };
        let mut out = Vec::new();
        for location in locations {
            if out.len() >= limit {
                break;
            }
            let record = self.read(location)?;
            if record.account_id == account_id {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Positions of the accounts' records, in log order.
    pub(crate) fn account_positions(
        &self,
        accounts: &std::collections::BTreeSet<String>,
    ) -> Vec<u32> {
        let index = read_lock(&self.index);
        let mut positions = Vec::new();
        for account in accounts {
            if let Some(p) = index.by_account.get(&hash(account)) {
                positions.extend_from_slice(p);
            }
        }
        positions.sort_unstable();
        positions.dedup();
        positions
    }

    /// Calls `visit` with the records at `positions` (ascending), reading
    /// sequentially; records whose account is not in `accounts` (a hash
    /// collision) are skipped when `accounts` is given.
    pub(crate) fn visit_positions(
        &self,
        positions: &[u32],
        accounts: Option<&std::collections::BTreeSet<String>>,
        visit: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    ) -> StoreResult<()> {
        for page in positions.chunks(SCAN_PAGE) {
            let locations: Vec<Location> = {
                let index = read_lock(&self.index);
                page.iter().map(|&p| index.locations[p as usize]).collect()
            };
            self.visit_locations(&locations, &mut |raw| {
                if accounts.is_some_and(|a| !a.contains(raw.account_id)) {
                    return Ok(());
                }
                visit(decode(&raw)?)
            })?;
        }
        Ok(())
    }

    /// Reads the records at `locations` in order through one buffered
    /// reader per segment, so that neighbouring records cost no extra
    /// system call.
    fn visit_locations(
        &self,
        locations: &[Location],
        visit: &mut dyn FnMut(RawRecord<'_>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let mut current: Option<(u32, BufReader<FileRef>, u64)> = None;
        let mut bytes = Vec::new();
        for location in locations {
            let want = u64::from(location.offset) + 4;
            let reuse = matches!(&current, Some((s, _, _)) if *s == location.segment);
            if !reuse {
                let file = {
                    let segments = read_lock(&self.segments);
                    let Some(segment) = segments.get(location.segment as usize) else {
                        return Err(StoreError::backend("read the log", "unknown segment"));
                    };
                    Arc::clone(&segment.file)
                };
                // Small enough that records far apart (an evidence pack's
                // accounts in a long log) do not each cost a large read.
                let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, FileRef(file, 0));
                reader
                    .seek(SeekFrom::Start(want))
                    .map_err(io("read the log"))?;
                current = Some((location.segment, reader, want));
            }
            let Some((_, reader, at)) = current.as_mut() else {
                continue;
            };
            if *at != want {
                reader
                    .seek_relative(want as i64 - *at as i64)
                    .map_err(io("read the log"))?;
            }
            bytes.resize(location.len as usize, 0);
            reader.read_exact(&mut bytes).map_err(io("read the log"))?;
            *at = want + u64::from(location.len);
            let raw = parse_record(&bytes)
                .ok_or_else(|| StoreError::backend("read the log", "a record does not parse"))?;
            visit(raw)?;
        }
        Ok(())
    }

    /// Visits the records after `after_seq` in log order, at most `limit`.
    pub(crate) fn scan_raw(
        &self,
        after_seq: u64,
        limit: usize,
        visit: &mut dyn FnMut(RawRecordView<'_>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let mut from = read_lock(&self.index).after(after_seq);
        let mut left = limit;
        while left > 0 {
            let locations: Vec<Location> = {
                let index = read_lock(&self.index);
                let to = index.locations.len().min(from + SCAN_PAGE.min(left));
                index.locations[from..to].to_vec()
            };
            if locations.is_empty() {
                break;
            }
            from += locations.len();
            left -= locations.len();
            self.visit_locations(&locations, &mut |raw| visit(RawRecordView(raw)))?;
        }
        Ok(())
    }

    pub(crate) fn scan(
        &self,
        after_seq: u64,
        limit: usize,
        visit: &mut dyn FnMut(StoredRecord) -> StoreResult<()>,
    ) -> StoreResult<()> {
        self.scan_raw(after_seq, limit, &mut |raw| visit(raw.decode()?))
    }

    /// Whether a record may hold `event_id`: false for certain when no
    /// stored id has its hash.
    pub(crate) fn may_hold(&self, event_id: &str) -> bool {
        read_lock(&self.index).by_id.contains_key(&hash(event_id))
    }

    pub(crate) fn last_seq(&self) -> u64 {
        read_lock(&self.index).seqs.last().copied().unwrap_or(0)
    }

    pub(crate) fn event_count(&self) -> u64 {
        read_lock(&self.index).seqs.len() as u64
    }
}

/// A record as stored, before decompression: its ids are readable without
/// decompressing the texts.
pub(crate) struct RawRecordView<'a>(RawRecord<'a>);

impl RawRecordView<'_> {
    pub(crate) fn seq(&self) -> u64 {
        self.0.seq
    }

    pub(crate) fn event_id(&self) -> &str {
        self.0.event_id
    }

    /// The stored (compressed) event and decision, as the `events` table of
    /// a backup holds them.
    pub(crate) fn stored_texts(&self) -> (&[u8], &[u8]) {
        (self.0.event, self.0.decision)
    }

    pub(crate) fn fields(&self) -> (&str, &str, i64, i64) {
        (
            self.0.account_id,
            self.0.event_type,
            self.0.event_time,
            self.0.received_at_ms,
        )
    }

    pub(crate) fn decode(&self) -> StoreResult<StoredRecord> {
        decode(&self.0)
    }
}

/// A shared file read through `read_at` with its own position, so that
/// several readers of one segment never move each other's position.
struct FileRef(Arc<File>, u64);

impl Read for FileRef {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&*self.0, buf, self.1)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&*self.0, buf, self.1)?;
        self.1 += n as u64;
        Ok(n)
    }
}

impl Seek for FileRef {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let next = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.1.checked_add_signed(d),
            SeekFrom::End(_) => {
                return Err(std::io::Error::other("seek from the end is not used"));
            }
        };
        self.1 = next.ok_or_else(|| std::io::Error::other("seek before the start"))?;
        Ok(self.1)
    }
}

impl Writer {
    fn new(file: File, path: PathBuf, segment: u32, end: u64, direct: bool) -> StoreResult<Writer> {
        let block = if direct { 512 } else { 1 };
        let mut writer = Writer {
            file,
            path,
            segment,
            end,
            direct,
            block,
            tail: AlignedBuf::with_capacity(if direct { TAIL_BUFFER_BYTES } else { 0 }),
            frame: Vec::new(),
        };
        if direct {
            writer.load_tail()?;
        }
        Ok(writer)
    }

    /// Reads the partial block at the end of the segment into `tail`,
    /// through a plain handle: `O_DIRECT` reads would need aligned lengths.
    fn load_tail(&mut self) -> StoreResult<()> {
        let from = self.end - self.end % self.block as u64;
        let n = (self.end - from) as usize;
        if n > 0 {
            let plain = File::open(&self.path).map_err(io("open the event log"))?;
            read_at(&plain, &mut self.tail.bytes_mut()[..n], from)
                .map_err(io("open the event log"))?;
        }
        Ok(())
    }

    /// Writes `frame` at `end` and makes it durable.
    fn write_frame(&mut self, frame: &[u8]) -> StoreResult<()> {
        if !self.direct {
            write_at(&self.file, frame, self.end).map_err(io("append"))?;
            self.file.sync_data().map_err(io("append"))?;
            self.end += frame.len() as u64;
            return Ok(());
        }
        let block = self.block as u64;
        let from = self.end - self.end % block;
        let kept = (self.end - from) as usize;
        let used = kept + frame.len();
        let padded = used.div_ceil(self.block) * self.block;
        if padded > self.tail.capacity() {
            let mut bigger = AlignedBuf::with_capacity(padded.next_power_of_two());
            bigger.bytes_mut()[..kept].copy_from_slice(&self.tail.bytes()[..kept]);
            self.tail = bigger;
        }
        let buf = self.tail.bytes_mut();
        buf[kept..used].copy_from_slice(frame);
        buf[used..padded].fill(0);
        let written = write_at(&self.file, &self.tail.bytes()[..padded], from);
        match written {
            Ok(()) => {}
            // Some devices take only 4 KiB blocks.
            Err(e) if self.block < 4096 && e.kind() == std::io::ErrorKind::InvalidInput => {
                self.block = 4096;
                self.load_tail()?;
                return self.write_frame(frame);
            }
            Err(e) => return Err(StoreError::backend("append", e)),
        }
        self.file.sync_data().map_err(io("append"))?;
        // Keep the partial block the next commit starts from.
        let new_end = self.end + frame.len() as u64;
        let new_from = new_end - new_end % block;
        let keep = (new_end - new_from) as usize;
        let shift = (new_from - from) as usize;
        if self.tail.capacity() > TAIL_BUFFER_BYTES {
            // A bulk commit grew the buffer; the next ones are small again.
            let mut small = AlignedBuf::with_capacity(TAIL_BUFFER_BYTES);
            small.bytes_mut()[..keep].copy_from_slice(&self.tail.bytes()[shift..shift + keep]);
            self.tail = small;
        } else {
            self.tail.bytes_mut().copy_within(shift..shift + keep, 0);
        }
        self.end = new_end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, event_id: &str) -> NewRecord<'_> {
        NewRecord {
            seq,
            event_id,
            account_id: if seq.is_multiple_of(2) { "even" } else { "odd" },
            event_type: "login",
            event_time: 1_526_000_000 + seq as i64,
            received_at_ms: 1_700_000_000_000 + seq as i64,
            event_json: r#"{"type":"login","status":"success"}"#,
            decision_json: r#"{"action":"allow"}"#,
        }
    }

    fn append(log: &EventLog, from: u64, to: u64) {
        let ids: Vec<String> = (from..=to).map(|s| format!("e{s}")).collect();
        let records: Vec<NewRecord<'_>> = (from..=to)
            .zip(&ids)
            .map(|(seq, id)| record(seq, id))
            .collect();
        log.append(&records).unwrap();
    }

    fn seqs(log: &EventLog) -> Vec<u64> {
        let mut seqs = Vec::new();
        log.scan(0, usize::MAX, &mut |r| {
            seqs.push(r.seq);
            Ok(())
        })
        .unwrap();
        seqs
    }

    fn segment_paths(dir: &Path) -> Vec<PathBuf> {
        segment_files(dir)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn records_survive_a_reopen_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open_with(dir.path(), 1_000, false).unwrap();
        for group in 0..20 {
            append(&log, group * 3 + 1, group * 3 + 3);
        }
        let starts: Vec<u64> = segment_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|(first, _)| first)
            .collect();
        assert!(starts.len() > 3, "segments: {starts:?}");
        assert_eq!(starts[0], 1);
        drop(log);
        let log = EventLog::open_with(dir.path(), 1_000, false).unwrap();
        assert_eq!(seqs(&log), (1..=60).collect::<Vec<_>>());
        assert_eq!(log.get_event("e37").unwrap().unwrap().seq, 37);
        let odd = log.account_events("odd", 2).unwrap();
        assert_eq!(odd.iter().map(|r| r.seq).collect::<Vec<_>>(), [59, 57]);
        assert_eq!(odd[0].decision_json, r#"{"action":"allow"}"#);
        // Ids stay unique across the reopen.
        let again = [record(61, "e5")];
        assert!(matches!(
            log.append(&again),
            Err(StoreError::Duplicate { seq: 61, .. })
        ));
        append(&log, 61, 61);
        assert_eq!(log.last_seq(), 61);
        // A bulk group larger than the write buffer, then small ones again.
        let big = "y".repeat(200_000);
        log.append(&[NewRecord {
            event_json: &big,
            ..record(62, "big")
        }])
        .unwrap();
        append(&log, 63, 64);
        drop(log);
        let log = EventLog::open_with(dir.path(), 1_000, false).unwrap();
        assert_eq!(log.get_event("big").unwrap().unwrap().event_json, big);
        assert_eq!(seqs(&log).len(), 64);
    }

    #[test]
    fn an_unfinished_commit_at_the_end_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        append(&log, 1, 2);
        append(&log, 3, 5);
        drop(log);
        let path = segment_paths(dir.path()).pop().unwrap();
        let bytes = fs::read(&path).unwrap();
        let end = scan_segment(&File::open(&path).unwrap(), |_, _, _| Ok(()))
            .unwrap()
            .end as usize;
        // The last frame loses its last byte and gets garbage after it, as a
        // write cut short by a power loss could leave it.
        let mut torn = bytes[..end - 1].to_vec();
        torn.extend_from_slice(&[0xAB; 700]);
        fs::write(&path, &torn).unwrap();
        // A reader that changes nothing stops before it...
        let mut read = Vec::new();
        read_committed(dir.path(), &mut |raw| {
            read.push(raw.seq());
            Ok(())
        })
        .unwrap();
        assert_eq!(read, [1, 2]);
        assert_eq!(fs::read(&path).unwrap(), torn);
        // ...and the open cuts it off, then appends after the good frames.
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(seqs(&log), [1, 2]);
        append(&log, 3, 4);
        drop(log);
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(seqs(&log), [1, 2, 3, 4]);
        assert_eq!(log.get_event("e4").unwrap().unwrap().account_id, "even");
    }

    #[test]
    fn damage_before_the_last_segment_refuses_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open_with(dir.path(), 300, false).unwrap();
        for group in 0..6 {
            append(&log, group * 2 + 1, group * 2 + 2);
        }
        drop(log);
        let first = segment_paths(dir.path()).remove(0);
        let mut bytes = fs::read(&first).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xFF;
        fs::write(&first, &bytes).unwrap();
        let err = EventLog::open_with(dir.path(), 300, false).err().unwrap();
        let text = err.to_string();
        assert!(text.contains("before the last segment"), "{text}");
        assert!(
            read_committed(dir.path(), &mut |_| Ok(())).is_err(),
            "a reader refuses it too"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn another_process_holding_the_lock_is_refused() {
        use rustix::fs::{FlockOperation, flock};
        let dir = tempfile::tempdir().unwrap();
        drop(EventLog::open(dir.path()).unwrap());
        // Another open file description stands for another process.
        let other = File::options()
            .write(true)
            .open(dir.path().join("LOCK"))
            .unwrap();
        flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
        let err = EventLog::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("held by another process"), "{err}");
        // Reading what is committed needs no lock: a backup reads beside a
        // running server.
        assert_eq!(read_committed(dir.path(), &mut |_| Ok(())).unwrap(), 0);
        drop(other);
        let log = EventLog::open(dir.path()).unwrap();
        // While this process holds it, another process could not take it.
        let probe = File::options()
            .write(true)
            .open(dir.path().join("LOCK"))
            .unwrap();
        assert!(flock(&probe, FlockOperation::NonBlockingLockExclusive).is_err());
        drop(log);
        assert!(flock(&probe, FlockOperation::NonBlockingLockExclusive).is_ok());
    }

    #[test]
    fn damage_in_the_middle_of_the_last_segment_is_refused_not_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        // Groups large enough that the first frame ends blocks before the
        // last one starts.
        for group in 0..4 {
            append(&log, group * 40 + 1, group * 40 + 40);
        }
        drop(log);
        let path = segment_paths(dir.path()).pop().unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[FRAME_HEADER + 100] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let err = EventLog::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("frames follow it"), "{err}");
        // Nothing was cut: undoing the damage gives every record back.
        bytes[FRAME_HEADER + 100] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(seqs(&EventLog::open(dir.path()).unwrap()).len(), 160);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever a crash does to the last commit's write (cut anywhere,
        /// garbage after the cut), the log reopens with every earlier group
        /// whole and the last one either whole or absent, and takes new
        /// commits after it.
        #[test]
        fn a_torn_last_commit_loses_only_itself(
            sizes in proptest::collection::vec(1usize..6, 2..7),
            texts in proptest::collection::vec(0usize..900, 1..4),
            cut in 0.0f64..1.0,
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let filler: Vec<String> = texts.iter().map(|n| "x".repeat(*n)).collect();
            let log = EventLog::open(dir.path()).unwrap();
            let mut seq = 0u64;
            let mut ids = Vec::new();
            let mut ends = Vec::new();
            let path = segment_paths(dir.path()).pop().unwrap();
            for (g, size) in sizes.iter().enumerate() {
                let group_ids: Vec<String> =
                    (0..*size).map(|i| format!("g{g}-{i}")).collect();
                let records: Vec<NewRecord<'_>> = group_ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        seq += 1;
                        NewRecord {
                            event_json: &filler[i % filler.len()],
                            ..record(seq, id)
                        }
                    })
                    .collect();
                log.append(&records).unwrap();
                ids.push(group_ids);
                ends.push(scan_segment(&File::open(&path).unwrap(), |_, _, _| Ok(())).unwrap().end);
            }
            drop(log);
            let last_start = ends[ends.len() - 2];
            let last_end = ends[ends.len() - 1];
            let at = last_start + ((last_end - last_start) as f64 * cut) as u64;
            let mut bytes = fs::read(&path).unwrap();
            bytes.truncate(at as usize);
            // A torn write leaves garbage only within its own blocks.
            let write_end = last_end.div_ceil(512) * 512;
            let room = (write_end - at) as usize;
            bytes.extend_from_slice(&garbage[..garbage.len().min(room)]);
            fs::write(&path, &bytes).unwrap();

            let log = EventLog::open(dir.path()).unwrap();
            let kept: Vec<u64> = seqs(&log);
            let whole: u64 = sizes.iter().map(|s| *s as u64).sum();
            let before_last = whole - *sizes.last().unwrap() as u64;
            proptest::prop_assert!(
                kept == (1..=before_last).collect::<Vec<_>>()
                    || kept == (1..=whole).collect::<Vec<_>>(),
                "kept {:?} of {} (last group from {})", kept, whole, before_last + 1
            );
            for group in &ids[..ids.len() - 1] {
                for id in group {
                    proptest::prop_assert!(log.get_event(id).unwrap().is_some());
                }
            }
            let next = kept.len() as u64 + 1;
            log.append(&[record(next, "after")]).unwrap();
            drop(log);
            let log = EventLog::open(dir.path()).unwrap();
            proptest::prop_assert_eq!(log.last_seq(), next);
            proptest::prop_assert_eq!(log.get_event("after").unwrap().unwrap().seq, next);
        }
    }

    #[test]
    fn a_group_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        append(&log, 1, 2);
        // A seq not above the last, and an id twice in one group.
        assert!(log.append(&[record(3, "e3"), record(3, "e4")]).is_err());
        assert!(log.append(&[record(3, "e3"), record(4, "e3")]).is_err());
        assert!(log.append(&[record(2, "x")]).is_err());
        assert_eq!(seqs(&log), [1, 2]);
        drop(log);
        assert_eq!(seqs(&EventLog::open(dir.path()).unwrap()), [1, 2]);
    }
}
