//! `intervals.hlog`: an HdrHistogram interval log written as the run goes, one line per key per
//! interval, so a crash loses at most the interval in progress. Histograms use V2 + DEFLATE, the
//! only form the reference Java tools read; values are microseconds of latency from due time.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::metrics::Hist;

/// An open interval log.
pub struct HlogWriter {
    file: File,
    ser: V2DeflateSerializer,
}

impl std::fmt::Debug for HlogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlogWriter").finish_non_exhaustive()
    }
}

impl HlogWriter {
    /// Creates the file and writes the header (format version, StartTime, BaseTime, legend).
    pub fn create(path: &Path, start: SystemTime) -> std::io::Result<HlogWriter> {
        let mut file = File::create(path)?;
        let mut ser = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("[Histogram log format version 1.3]")
            .add_comment("[stampede: latency in microseconds from each request's due time; tags are flow.step and flow.iteration]")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut file, &mut ser)?;
        file.write_all(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")?;
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

    /// Pushes written lines to the operating system.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
