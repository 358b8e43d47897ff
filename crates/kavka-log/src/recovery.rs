//! Scanning a segment file batch by batch: used to recover the active segment after a
//! crash and to rebuild missing indexes. Stops at the first batch that is torn, fails its
//! CRC, or does not follow its predecessor, and reports where and why.

use crate::error::{IoContext, LogError};
use kavka_record::{BATCH_OVERHEAD, BatchHeader};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// One valid batch found by a scan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScannedBatch {
    pub position: u64,
    pub header: BatchHeader,
}

#[derive(Debug)]
pub(crate) struct Scan {
    /// Byte position just past the last valid batch.
    pub valid_end: u64,
    /// The first invalid batch: its position and what was wrong.
    pub invalid: Option<(u64, String)>,
}

/// Reads batches from `start` (whose first batch must start at or after `min_offset`),
/// calling `on_batch` for each valid one. With `verify_crc`, reads whole batches and checks
/// their CRC; otherwise reads only headers.
pub(crate) fn scan(
    file: &File,
    path: &Path,
    start: u64,
    min_offset: i64,
    verify_crc: bool,
    mut on_batch: impl FnMut(ScannedBatch) -> Result<(), LogError>,
) -> Result<Scan, LogError> {
    let len = file.metadata().at(path)?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    reader.seek(SeekFrom::Start(start)).at(path)?;
    let mut pos = start;
    let mut expected_min = min_offset;
    let mut buf = vec![0u8; BATCH_OVERHEAD];
    while pos < len {
        let remaining = len - pos;
        if remaining < BATCH_OVERHEAD as u64 {
            return Ok(torn(
                pos,
                format!("{remaining} trailing bytes, less than a batch header"),
            ));
        }
        buf.resize(BATCH_OVERHEAD, 0);
        reader.read_exact(&mut buf).at(path)?;
        let header = match BatchHeader::parse(&buf) {
            Ok(h) => h,
            Err(e) => return Ok(torn(pos, e.to_string())),
        };
        let size = header.size() as u64;
        if size > remaining {
            return Ok(torn(
                pos,
                format!("batch of {size} bytes, only {remaining} left in the file"),
            ));
        }
        if header.base_offset < expected_min || header.last_offset_delta < 0 {
            return Ok(torn(
                pos,
                format!(
                    "batch at offset {} does not follow offset {}",
                    header.base_offset,
                    expected_min - 1
                ),
            ));
        }
        if verify_crc {
            buf.resize(size as usize, 0);
            reader.read_exact(&mut buf[BATCH_OVERHEAD..]).at(path)?;
            if let Err(e) = header.verify_crc(&buf) {
                return Ok(torn(pos, e.to_string()));
            }
        } else {
            reader
                .seek_relative((size as usize - BATCH_OVERHEAD) as i64)
                .at(path)?;
        }
        on_batch(ScannedBatch {
            position: pos,
            header,
        })?;
        expected_min = header.next_offset();
        pos += size;
    }
    Ok(Scan {
        valid_end: pos,
        invalid: None,
    })
}

fn torn(pos: u64, reason: String) -> Scan {
    Scan {
        valid_end: pos,
        invalid: Some((pos, reason)),
    }
}
