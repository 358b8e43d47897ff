//! Kafka's framing: every request and response is an `int32` size followed by that many
//! bytes.
//!
//! Invariants: a size that is negative, below the smallest request header or above the
//! configured maximum is refused before anything is buffered; the buffer grows only as
//! bytes arrive (a client that announces 100 MiB and sends ten bytes holds ten bytes);
//! a frame must arrive whole within the read deadline from its first byte, so a client
//! trickling bytes (slow loris) cannot hold a connection forever.

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The smallest request: api key, api version, correlation id, client id length.
pub const REQUEST_HEADER_MIN: i32 = 10;

/// How many bytes a read asks for at most, so buffers follow what actually arrives.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(
        "frame size {size} is negative or smaller than a request header ({REQUEST_HEADER_MIN} bytes)"
    )]
    TooSmall { size: i32 },
    #[error("frame size {size} exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i32, max: usize },
    #[error("connection closed after {got} of {want} bytes of a frame")]
    Truncated { got: usize, want: usize },
    #[error("a frame did not arrive whole within {0:?} (slow or stalled client)")]
    Stalled(Duration),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)`: the peer closed the connection between frames, or
/// stayed idle for `idle` (Kafka's `connections.max.idle.ms`).
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    idle: Duration,
) -> Result<Option<BytesMut>, FrameError> {
    let mut size = [0u8; 4];
    // The first byte may take as long as the idle limit; the rest of the frame must
    // follow within the same span.
    let first = match tokio::time::timeout(idle, r.read(&mut size[..1])).await {
        Err(_) => return Ok(None),
        Ok(Ok(0)) => return Ok(None),
        Ok(Ok(_)) => tokio::time::Instant::now(),
        Ok(Err(e)) => return Err(e.into()),
    };
    let deadline = first + idle;
    let rest = async {
        r.read_exact(&mut size[1..])
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => FrameError::Truncated { got: 1, want: 4 },
                _ => e.into(),
            })?;
        let n = i32::from_be_bytes(size);
        if n < REQUEST_HEADER_MIN {
            return Err(FrameError::TooSmall { size: n });
        }
        if n as usize > max {
            return Err(FrameError::TooLarge { size: n, max });
        }
        let want = n as usize;
        let mut buf = BytesMut::with_capacity(want.min(READ_CHUNK));
        while buf.len() < want {
            let room = (want - buf.len()).min(READ_CHUNK);
            buf.reserve(room);
            let got = (&mut *r).take(room as u64).read_buf(&mut buf).await?;
            if got == 0 {
                return Err(FrameError::Truncated {
                    got: buf.len(),
                    want,
                });
            }
        }
        Ok(buf)
    };
    match tokio::time::timeout_at(deadline, rest).await {
        Ok(r) => r.map(Some),
        Err(_) => Err(FrameError::Stalled(idle)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn reads_frames_back_to_back() {
        let mut bytes = frame(&[1; 12]);
        bytes.extend(frame(&[2; 20]));
        let mut r = &bytes[..];
        assert_eq!(
            read_frame(&mut r, 100, IDLE).await.unwrap().unwrap()[..],
            [1; 12]
        );
        assert_eq!(
            read_frame(&mut r, 100, IDLE).await.unwrap().unwrap()[..],
            [2; 20]
        );
        assert!(read_frame(&mut r, 100, IDLE).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_sizes_that_lie() {
        for (size, want) in [(-1i32, "negative"), (3, "smaller"), (1 << 30, "exceeds")] {
            let mut bytes = size.to_be_bytes().to_vec();
            bytes.extend([0; 16]);
            let err = read_frame(&mut &bytes[..], 1 << 20, IDLE)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{size}: {err}");
        }
    }

    #[tokio::test]
    async fn a_truncated_frame_is_an_error() {
        let bytes = frame(&[7; 40]);
        let err = read_frame(&mut &bytes[..30], 100, IDLE).await.unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { got: 26, want: 40 }),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_frame_times_out() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, &[0, 0, 0, 40, 1, 2])
            .await
            .unwrap();
        let err = read_frame(&mut server, 100, IDLE).await.unwrap_err();
        assert!(matches!(err, FrameError::Stalled(_)), "{err}");
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_ends_quietly() {
        let (_client, mut server) = tokio::io::duplex(64);
        assert!(read_frame(&mut server, 100, IDLE).await.unwrap().is_none());
    }
}
