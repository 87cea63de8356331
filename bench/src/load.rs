//! Closed-loop load: each client runs one operation after another for the warm-up and
//! the measured window; what completes inside the window is counted.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::client::Failure;
use crate::stats::Tally;

/// One client's repeated operation (a request, or a whole multi-request flow).
pub trait Flow: Send + 'static {
    fn run(&mut self) -> impl Future<Output = Result<(), Failure>> + Send;
}

pub struct Window {
    pub warmup: Duration,
    pub duration: Duration,
    /// An operation still unanswered after this is a timeout.
    pub op_timeout: Duration,
}

/// Runs every flow concurrently; `mark` is called when the measured window opens and
/// when it closes (to sample the server's CPU time). The result holds the operations
/// that ended inside the window.
pub async fn closed_loop<F: Flow>(flows: Vec<F>, window: &Window, mut mark: impl FnMut()) -> Tally {
    let start = Instant::now();
    let measure_from = start + window.warmup;
    let end = measure_from + window.duration;
    let op_timeout = window.op_timeout;
    let tasks: Vec<_> = flows
        .into_iter()
        .map(|mut flow| {
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let outcome = tokio::time::timeout(op_timeout, flow.run()).await;
                    let done = Instant::now();
                    // Counted by completion: with latencies near the window's length,
                    // requiring the start inside it too would undercount throughput.
                    if done < measure_from || done > end {
                        continue;
                    }
                    match outcome {
                        Ok(Ok(())) => tally.ok(done - began),
                        Ok(Err(why)) => tally.failed(&why),
                        Err(_) => tally.failed(&Failure::Timeout),
                    }
                }
                tally
            })
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    mark();
    tokio::time::sleep_until(end.into()).await;
    mark();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(&task.await.expect("a load task panicked"));
    }
    total
}
