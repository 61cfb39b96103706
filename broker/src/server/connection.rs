//! One client connection: read frames, handle several requests at once
//! (clients pipeline up to `max.in.flight`), write responses strictly in
//! request order.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use futures::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::Task;

use super::frame::read_frame;
use crate::handlers::{self, Reply};
use crate::shard_state::ShardState;

pub async fn serve(state: Rc<ShardState>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.split();
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    let (tx, rx) =
        local_channel::new_bounded::<Task<Reply>>(state.config.max_in_flight_per_connection);

    let writer_task = glommio::spawn_local(async move {
        while let Some(pending) = rx.recv().await {
            match pending.await {
                Reply::Frame(frame) => {
                    if writer.write_all(&frame).await.is_err() {
                        break;
                    }
                }
                Reply::Parts(parts) => {
                    let mut failed = false;
                    for part in parts {
                        if writer.write_all(&part).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed {
                        break;
                    }
                }
                Reply::None => {}
                Reply::Close(why) => {
                    tracing::warn!("closing connection from {peer}: {why}");
                    break;
                }
            }
        }
        let _ = writer.close().await;
    });

    let max = state.config.socket_request_max_bytes;
    loop {
        let frame: Bytes = match read_frame(&mut reader, max).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("closing connection from {peer}: {e}");
                break;
            }
        };
        let st = state.clone();
        let task =
            glommio::spawn_local(async move { handlers::handle_frame(&st, frame, peer).await });
        if tx.send(task).await.is_err() {
            break; // the writer stopped (error or Close): stop reading too
        }
    }
    drop(tx);
    writer_task.await;
}
