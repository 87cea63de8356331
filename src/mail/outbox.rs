//! The sender of the outbox. Every node runs one: it leases due mails from the
//! database, sends them (several at once, over pooled SMTP connections), deletes each
//! one the server took, and gives the others back with a later attempt time, doubling
//! the wait after each failure. A lease outlives the longest send, so a mail leased by
//! one node is not sent by another; a node that dies holding a lease only delays its
//! mails until the lease ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::Mailer;
use crate::config::MailSettings;
use crate::domain::unix_now;
use crate::store::DynStore;
use crate::store::mail::QueuedMail;

/// How often the sender looks for mail queued by other nodes or due for a retry.
const POLL: Duration = Duration::from_millis(500);

pub struct Sender {
    store: DynStore,
    mailer: Arc<Mailer>,
    concurrency: usize,
    lease_secs: i64,
    retry_base_secs: i64,
    retry_max_secs: i64,
}

impl Sender {
    pub fn new(store: DynStore, mailer: Arc<Mailer>, m: &MailSettings) -> Sender {
        Sender {
            store,
            mailer,
            concurrency: m.send_concurrency,
            // A send cannot outlast a few command timeouts; the lease outlasts those.
            lease_secs: (m.smtp_timeout_secs as i64 * 4).max(60),
            retry_base_secs: m.retry_base_secs,
            retry_max_secs: m.retry_max_secs,
        }
    }

    /// Sends until the task is dropped.
    pub async fn run(self) {
        loop {
            let full = match self.send_due().await {
                Ok(full) => full,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox: leasing mail failed");
                    false
                }
            };
            if !full {
                let _ = tokio::time::timeout(POLL, self.mailer.queued.notified()).await;
            }
        }
    }

    /// Leases one batch and sends it; true if the batch was full (more may be due).
    pub async fn send_due(&self) -> anyhow::Result<bool> {
        let now = unix_now();
        let lease = crate::crypto::random_id();
        let limit = (self.concurrency * 8) as i64;
        let batch = self
            .store
            .mail()
            .lease_mail(&lease, now, now + self.lease_secs, limit)
            .await?;
        let full = batch.len() as i64 == limit;
        if batch.is_empty() {
            return Ok(false);
        }
        let mut sent = Vec::with_capacity(batch.len());
        let mut failed = Vec::new();
        let mut sending = JoinSet::new();
        let mut waiting = batch.into_iter();
        for mail in waiting.by_ref().take(self.concurrency) {
            sending.spawn(send_one(Arc::clone(&self.mailer), mail));
        }
        while let Some(done) = sending.join_next().await {
            match done {
                Ok((mail, Ok(()))) => sent.push(mail.id),
                Ok((mail, Err(e))) => failed.push((mail, e)),
                Err(e) => tracing::error!(error = %e, "outbox: a send panicked"),
            }
            if let Some(mail) = waiting.next() {
                sending.spawn(send_one(Arc::clone(&self.mailer), mail));
            }
        }
        if !sent.is_empty() {
            self.store.mail().mails_sent(&lease, &sent).await?;
            tracing::debug!(count = sent.len(), "outbox: mails sent");
        }
        for (mail, e) in failed {
            let wait = self.backoff(mail.attempts);
            // The recipient and the link stay out of the log.
            tracing::warn!(mail = %mail.id, kind = %mail.kind, attempts = mail.attempts + 1,
                retry_in_secs = wait, error = %e, "outbox: sending failed; will retry");
            let error = format!("{e:#}");
            self.store
                .mail()
                .mail_failed(&lease, &mail.id, unix_now() + wait, &error)
                .await?;
        }
        Ok(full)
    }

    fn backoff(&self, attempts: i64) -> i64 {
        crate::domain::backoff_secs(self.retry_base_secs, self.retry_max_secs, attempts)
    }
}

async fn send_one(mailer: Arc<Mailer>, mail: QueuedMail) -> (QueuedMail, anyhow::Result<()>) {
    let result = mailer.deliver(&mail).await;
    (mail, result)
}
