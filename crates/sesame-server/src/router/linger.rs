//! Oversized request bodies: refused early, then a lingering close.
//!
//! A server that answers 413 and closes while the client is still sending
//! leaves unread data in its socket, and the kernel answers that with a
//! reset: the client gets a broken pipe or "connection reset" instead of the
//! 413 (every time with an 8 MB body, now and then with 1 MB). So, like
//! nginx's lingering close, sesame answers with `Connection: close`, and then
//! keeps reading and discarding what the client still sends, up to
//! [`LINGER_BYTES`] and for up to [`LINGER_TIME`], before it lets the
//! connection go. A client that sends its whole body (within those bounds)
//! and then reads gets the answer; one that sends forever is cut off.
//!
//! A body declared larger than the limit (`Content-Length`) is refused
//! before a byte of it is read: the handler gets a stand-in one byte over the
//! limit, so it refuses in its own words (the JSON envelope, or the form page
//! again), and a client that waits for `100 Continue` gets the 413 instead
//! and never sends the body. A body of unknown length (chunked) is read here
//! up to one byte past the limit and handed on; if there was more, the rest
//! is discarded in the same way after the answer.
//!
//! hyper makes this work: as long as the request body is alive and polled,
//! the connection goes on reading it, also after the response is written;
//! once it is dropped unread, hyper closes the connection.

use crate::error::ApiError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::pin::Pin;
use std::time::Duration;

/// Request bodies are small JSON objects (or forms); anything larger is
/// refused (413) before it is read into memory or parsed.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// After an early answer, at most this much more of the body is read and
/// discarded before the connection is closed anyway.
pub const LINGER_BYTES: u64 = 64 * 1024 * 1024;

/// After an early answer, the body is read and discarded for at most this
/// long (from the answer) before the connection is closed anyway.
pub const LINGER_TIME: Duration = Duration::from_secs(10);

/// What the handler gets in place of a body declared over the limit.
static OVER_LIMIT: [u8; MAX_BODY_BYTES + 1] = [b' '; MAX_BODY_BYTES + 1];

/// The middleware (outside the body limit, around every route).
pub async fn lingering_close(request: Request, next: Next) -> Response {
    let (parts, mut body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    match body.size_hint().exact() {
        // hyper reads exactly the declared length: within the limit.
        Some(declared) if declared <= MAX_BODY_BYTES as u64 => {
            return next.run(Request::from_parts(parts, body)).await;
        }
        Some(_) => {
            let waits_for_continue = parts
                .headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            let response = next
                .run(Request::from_parts(parts, Body::from(&OVER_LIMIT[..])))
                .await;
            // Reading the body would send `100 Continue` and so invite it:
            // dropping it unread tells hyper to close after the answer.
            if !waits_for_continue {
                linger(body);
            }
            return closing(response);
        }
        None => {}
    }
    // Unknown length: read up to one byte past the limit.
    let mut prefix = Vec::new();
    loop {
        match next_frame(&mut body).await {
            None => {
                // All of it, within the limit: the connection can be reused.
                return next
                    .run(Request::from_parts(parts, Body::from(prefix)))
                    .await;
            }
            Some(Ok(data)) => {
                prefix.extend_from_slice(&data.unwrap_or_default());
                if prefix.len() > MAX_BODY_BYTES {
                    break;
                }
            }
            Some(Err(e)) => {
                let message = format!("invalid request body: {e}");
                return closing(ApiError::BadRequest("invalid_body", message).into_response());
            }
        }
    }
    prefix.truncate(MAX_BODY_BYTES + 1);
    let response = next
        .run(Request::from_parts(parts, Body::from(prefix)))
        .await;
    linger(body);
    closing(response)
}

/// The next frame of `body`: its data (`None` for trailers), an error, or
/// `None` at the end.
async fn next_frame(body: &mut Body) -> Option<Result<Option<Bytes>, axum::Error>> {
    std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))
        .await
        .map(|frame| frame.map(|f| f.into_data().ok()))
}

fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reads and discards the rest of `body`, within [`LINGER_BYTES`] and
/// [`LINGER_TIME`], then drops it (and so lets hyper close the connection).
fn linger(mut body: Body) {
    tokio::spawn(async move {
        let drain = async {
            let mut discarded = 0u64;
            while let Some(Ok(data)) = next_frame(&mut body).await {
                discarded += data.map_or(0, |d| d.len() as u64);
                if discarded > LINGER_BYTES {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}
