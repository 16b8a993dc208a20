//! `intervals.hlog`: an HdrHistogram interval log written as the run goes, one line per key per
//! interval, so a crash loses at most the interval in progress. Histograms use V2 + DEFLATE, the
//! only form the reference Java tools read; values are microseconds of latency from due time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use flate2::{Compress, Compression, FlushCompress, Status};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::{
    Serializer, V2DeflateSerializeError, V2SerializeError, V2Serializer,
};
use hdrhistogram::{Counter, Histogram};

use crate::model::Hist;

/// An open interval log.
pub struct HlogWriter {
    file: BufWriter<File>,
    ser: Deflated,
}

impl std::fmt::Debug for HlogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlogWriter").finish_non_exhaustive()
    }
}

impl HlogWriter {
    /// Creates the file and writes the header (format version, StartTime, BaseTime, legend).
    pub fn create(path: &Path, start: SystemTime) -> std::io::Result<HlogWriter> {
        let mut file = BufWriter::new(File::create(path)?);
        let mut ser = Deflated::default();
        IntervalLogWriterBuilder::new()
            .add_comment("[Histogram log format version 1.3]")
            .add_comment("[stampede: latency in microseconds from each request's due time; tags are flow.step and flow.iteration]")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut file, &mut ser)?;
        file.write_all(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")?;
        // A log that cannot be written is found before the load starts, not at its first line.
        file.flush()?;
        Ok(HlogWriter { file, ser })
    }

    /// Appends one interval histogram; `start` is the offset from the log's BaseTime.
    pub fn write(
        &mut self,
        tag: &str,
        h: &Hist,
        start: Duration,
        len: Duration,
    ) -> std::io::Result<()> {
        let tag = Tag::new(tag);
        let mut w =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.file, &mut self.ser)?;
        w.write_histogram(h, start, len, tag)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))
    }

    /// Pushes written lines to the operating system: once per interval, so a crash still loses
    /// at most the interval in progress (a long interval's lines may take several writes).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The V2 + DEFLATE encoding of hdrhistogram's `V2DeflateSerializer` (cookie, compressed length,
/// zlib stream of the V2 bytes), with one compressor kept for the whole log and reset for each
/// histogram. The crate's own serializer allocates a new compressor for every histogram; a reset
/// still zeroes the tables, so what is saved is the allocation, and the fastest level does less
/// work per line.
struct Deflated {
    v2: V2Serializer,
    plain: Vec<u8>,
    packed: Vec<u8>,
    z: Compress,
}

impl Default for Deflated {
    fn default() -> Self {
        Deflated {
            v2: V2Serializer::new(),
            plain: Vec::new(),
            packed: Vec::new(),
            // Interval histograms are a few hundred bytes: the fastest level costs a fraction
            // of the default's work for a line a few bytes longer.
            z: Compress::new(Compression::fast(), true),
        }
    }
}

/// hdrhistogram's cookie for a V2 histogram compressed with DEFLATE.
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;

impl Serializer for Deflated {
    type SerializeError = V2DeflateSerializeError;

    fn serialize<T: Counter, W: Write>(
        &mut self,
        h: &Histogram<T>,
        writer: &mut W,
    ) -> Result<usize, V2DeflateSerializeError> {
        self.plain.clear();
        self.v2
            .serialize(h, &mut self.plain)
            .map_err(V2DeflateSerializeError::InternalSerializationError)?;
        self.packed.clear();
        self.packed
            .extend_from_slice(&V2_COMPRESSED_COOKIE.to_be_bytes());
        self.packed.extend_from_slice(&[0; 4]);
        self.z.reset();
        loop {
            self.packed.reserve(self.plain.len() / 2 + 64);
            let read = self.z.total_in() as usize;
            let status = self
                .z
                .compress_vec(&self.plain[read..], &mut self.packed, FlushCompress::Finish)
                .map_err(|e| V2DeflateSerializeError::IoError(std::io::Error::other(e)))?;
            if status == Status::StreamEnd {
                break;
            }
        }
        let len = u32::try_from(self.packed.len() - 8).map_err(|_| {
            V2DeflateSerializeError::InternalSerializationError(V2SerializeError::UsizeTypeTooSmall)
        })?;
        self.packed[4..8].copy_from_slice(&len.to_be_bytes());
        writer.write_all(&self.packed)?;
        Ok(self.packed.len())
    }
}

/// One key's histogram rebuilt from an interval log.
#[derive(Debug)]
pub struct Recovered {
    /// The tag (`flow.step` or `flow.iteration`).
    pub key: String,
    /// All intervals merged.
    pub hist: Hist,
    /// Intervals found.
    pub intervals: usize,
    /// Seconds from the log's base time to the end of the last interval.
    pub end_s: f64,
}

/// Why an interval log could not be read.
#[derive(Debug, thiserror::Error)]
#[error("`{path}` is not a readable interval log: {message}")]
pub struct LogError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// One interval histogram read back from an interval log.
#[derive(Debug)]
pub struct LoggedInterval {
    /// The tag (`flow.step` or `flow.iteration`).
    pub tag: String,
    /// Seconds from the log's base time to the interval's start.
    pub start_s: f64,
    /// The interval's length in seconds.
    pub len_s: f64,
    /// Its histogram.
    pub hist: Hist,
}

/// Every interval of an interval log, in file order. A torn last line (the process died while
/// writing it) is skipped, not an error; so is a line whose histogram does not decode.
pub fn read_intervals(path: &Path) -> Result<Vec<LoggedInterval>, LogError> {
    use base64::Engine as _;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let err = |message: String| LogError {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    // Keep whole lines only: a kill can leave the last one half written.
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => &bytes[..0],
    };
    let mut out = Vec::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(complete) {
        let entry = entry.map_err(|e| err(format!("{e:?}")))?;
        let LogEntry::Interval(h) = entry else {
            continue;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(h.encoded_histogram())
        else {
            continue;
        };
        let Ok(mut hist) = deserializer.deserialize::<u64, _>(&mut raw.as_slice()) else {
            continue;
        };
        // Intervals are added up by whoever reads them; a wider one must fit.
        hist.auto(true);
        out.push(LoggedInterval {
            tag: h
                .tag()
                .map_or_else(|| "untagged".to_string(), |t| t.as_str().to_string()),
            start_s: h.start_timestamp().as_secs_f64(),
            len_s: h.duration().as_secs_f64(),
            hist,
        });
    }
    Ok(out)
}

/// Merges every interval of every tag in an interval log — what survives a killed run.
pub fn recover(path: &Path) -> Result<Vec<Recovered>, LogError> {
    let mut out: Vec<Recovered> = Vec::new();
    for i in read_intervals(path)? {
        let end_s = i.start_s + i.len_s;
        match out.iter_mut().find(|r| r.key == i.tag) {
            Some(r) => {
                let _ = r.hist.add(&i.hist);
                r.intervals += 1;
                r.end_s = r.end_s.max(end_s);
            }
            None => out.push(Recovered {
                key: i.tag,
                hist: i.hist,
                intervals: 1,
                end_s,
            }),
        }
    }
    if out.is_empty() {
        return Err(LogError {
            path: path.display().to_string(),
            message: "no complete interval in it".into(),
        });
    }
    Ok(out)
}

/// A summary table of recovered histograms.
pub fn render_recovered(rs: &[Recovered]) -> String {
    use std::fmt::Write as _;
    let ms = |us: u64| crate::units::short_duration(Duration::from_micros(us));
    let end = rs.iter().map(|r| r.end_s).fold(0.0, f64::max);
    let mut out = format!(
        "recovered from the interval log: {} keys, {end:.0}s of intervals\n",
        rs.len()
    );
    let w = rs.iter().map(|r| r.key.len()).max().unwrap_or(3).max(3);
    let _ = writeln!(
        out,
        "  {:<w$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "key", "count", "p50", "p95", "p99", "p99.9", "max"
    );
    for r in rs {
        let h = &r.hist;
        let _ = writeln!(
            out,
            "  {:<w$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            r.key,
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.95)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_adds_intervals_of_any_range() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("i.hlog");
        let mut w = HlogWriter::create(&path, SystemTime::now()).unwrap();
        let (mut fast, mut slow) = (crate::model::new_hist(), crate::model::new_hist());
        fast.record(5).unwrap();
        slow.record(3_600_000_000).unwrap();
        let second = Duration::from_secs(1);
        w.write("f.a", &fast, Duration::ZERO, second).unwrap();
        w.write("f.a", &slow, second, second).unwrap();
        w.flush().unwrap();
        let r = recover(&path).unwrap();
        assert_eq!(r[0].hist.len(), 2, "the slow interval was refused");
        assert_eq!(r[0].intervals, 2);
    }

    #[test]
    fn a_reused_compressor_writes_what_the_reference_reads_back() {
        let mut ours = Deflated::default();
        for seed in 1..=3u64 {
            let mut h = crate::model::new_hist();
            for i in 0..5_000 * seed {
                h.record(1 + i * i % 90_000 * seed).unwrap();
            }
            let (mut mine, mut theirs) = (Vec::new(), Vec::new());
            ours.serialize(&h, &mut mine).unwrap();
            hdrhistogram::serialization::V2DeflateSerializer::new()
                .serialize(&h, &mut theirs)
                .unwrap();
            assert_eq!(mine[..4], theirs[..4], "the same cookie");
            // The Java reader trusts the length; the Rust one would read past a wrong one.
            let len = u32::from_be_bytes([mine[4], mine[5], mine[6], mine[7]]) as usize;
            assert_eq!(len, mine.len() - 8, "the compressed length");
            for bytes in [&mine, &theirs] {
                let back: Hist = hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut &bytes[..])
                    .unwrap();
                assert_eq!(back, h, "histogram {seed} survives the round trip");
            }
        }
    }
}
