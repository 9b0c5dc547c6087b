//! `sched.h` messaging: `nkit_send` / `nkit_process_local`, a mailbox per
//! node on numakit's node-placed [`MpmcRing`] (its slots in the memory of
//! the node whose threads read it).

use crate::error::{ffi, node_arg, CError};
use nk::collections::MpmcRing;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

/// Messages a node's mailbox holds (`NKIT_MAILBOX_CAPACITY`).
pub const MAILBOX_CAPACITY: usize = 4096;

struct Message(*mut c_void);

// SAFETY: the mailbox only carries the pointer value from the sending
// thread to the handling one, as the C API promises; what it points to is
// the program's to synchronise.
unsafe impl Send for Message {}

/// One slot per node id, the mailbox made on first use.
fn mailboxes() -> Result<&'static [OnceLock<MpmcRing<Message>>], CError> {
    static BOXES: OnceLock<Vec<OnceLock<MpmcRing<Message>>>> = OnceLock::new();
    if let Some(b) = BOXES.get() {
        return Ok(b);
    }
    let topo = nk::Topology::current()?;
    let max = topo.node_ids().map(|n| n.get() as usize).max().unwrap_or(0);
    Ok(BOXES.get_or_init(|| (0..=max).map(|_| OnceLock::new()).collect()))
}

/// The mailbox of `node`, made (on the node) if it is not yet.
fn mailbox(node: nk::NodeId) -> Result<&'static MpmcRing<Message>, CError> {
    let topo = nk::Topology::current()?;
    topo.node(node)?;
    let slot = mailboxes()?.get(node.get() as usize).ok_or_else(|| {
        CError::new(
            crate::error::NKIT_ERR_NO_SUCH_NODE,
            format!("node {node} came online after the mailboxes were made"),
        )
    })?;
    if let Some(r) = slot.get() {
        return Ok(r);
    }
    let ring = MpmcRing::new(node, MAILBOX_CAPACITY)?;
    // Two first senders may race: the loser's ring is dropped, empty.
    let _ = slot.set(ring);
    Ok(slot.get().expect("set above"))
}

/// Queue `data` for the threads of `target_node`. 0, or -1 (absent or
/// memoryless node, mailbox full: `NKIT_ERR_FULL`).
#[no_mangle]
pub extern "C" fn nkit_send(target_node: c_int, data: *mut c_void) -> c_int {
    ffi("nkit_send", -1, || {
        let node = node_arg(target_node, "nkit_send")?;
        mailbox(node)?.push(Message(data)).map_err(|_| {
            CError::new(
                crate::error::NKIT_ERR_FULL,
                format!(
                    "the mailbox of node {node} is full ({MAILBOX_CAPACITY} messages, \
                     NKIT_MAILBOX_CAPACITY): the message was not sent; a thread on node {node} \
                     drains it with nkit_process_local, then send again"
                ),
            )
        })?;
        Ok(0)
    })
}

/// Run `handler` on the messages queued for the node the calling thread
/// runs on, oldest first: at most `limit` of them, or until the mailbox is
/// empty when `limit` is 0. Returns how many were handled.
///
/// # Safety
/// `handler` is `NULL` or a function that may be called with every pointer
/// sent to this node.
#[no_mangle]
pub unsafe extern "C" fn nkit_process_local(
    handler: Option<unsafe extern "C" fn(*mut c_void)>,
    limit: usize,
) -> usize {
    ffi("nkit_process_local", 0, || {
        let Some(handler) = handler else {
            return Err(CError::null("handler", "nkit_process_local"));
        };
        let node = nk::current_node()?;
        let Some(ring) = mailboxes()?
            .get(node.get() as usize)
            .and_then(OnceLock::get)
        else {
            // Nothing was ever sent to this node.
            return Ok(0);
        };
        let mut handled = 0;
        while limit == 0 || handled < limit {
            match ring.pop() {
                Ok(Message(p)) => {
                    // SAFETY: the caller's contract for `handler`.
                    unsafe { handler(p) };
                    handled += 1;
                }
                Err(_) => break,
            }
        }
        Ok(handled)
    })
}
