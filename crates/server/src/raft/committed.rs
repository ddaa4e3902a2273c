//! What a committed log entry asks of this member, decoded in one place for the two that
//! apply entries: the raft driver (`driver`'s `apply_entries`) and the offline reader
//! ([`super::offline::load`]). So the two cannot come to read one log differently.
//!
//! Decoding is all it does. The effects stay with the caller: the driver answers proposers,
//! runs the lease clock and applies configuration changes to raft; the offline reader only
//! applies to the store. An entry that does not decode is an error for the caller to stop on
//! (the driver stops the process; the offline tools refuse the data directory).

use etcd_store::envelope::Entry as LogEntry;
use etcd_store::Command;
use etcd_v3proto::etcdrs::InternalRequest;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType};
use raft_proto::ConfChangeI as _;

/// A committed entry, decoded.
#[derive(Debug)]
pub(crate) enum Committed {
    /// Nothing for the store: a new leader's empty entry, or a configuration change raft
    /// turned into an empty entry because another was pending (its context still names the
    /// proposal).
    Empty,
    /// A v1/v2 store command (a `Join` or `UpdatePeer` among them changes the membership).
    Store(Command),
    /// An etcd v3 request.
    V3(InternalRequest),
    /// A configuration change, as raft-rs applies both kinds (v2), and the registration
    /// command its context carries, if any.
    ConfChange {
        /// The change.
        change: ConfChangeV2,
        /// The command applied with it (a `Join` or `Leave`).
        registration: Option<Command>,
    },
}

/// Decodes committed entry `e`; `Err` says what does not decode, naming the entry's index.
pub(crate) fn decode(e: &Entry) -> Result<Committed, String> {
    let index = e.index;
    let proto =
        |err: protobuf::ProtobufError| format!("committed entry {index} does not decode: {err}");
    let change = match e.get_entry_type() {
        EntryType::EntryNormal if e.data.is_empty() => return Ok(Committed::Empty),
        EntryType::EntryNormal => {
            return match LogEntry::decode(&e.data) {
                Ok(LogEntry::Command(cmd)) => Ok(Committed::Store(cmd)),
                Ok(LogEntry::V3(request)) => Ok(Committed::V3(request)),
                Err(err) => Err(format!(
                    "committed entry {index} holds no command this version understands: {err}"
                )),
            }
        }
        EntryType::EntryConfChange => ConfChange::parse_from_bytes(&e.data)
            .map_err(proto)?
            .into_v2(),
        EntryType::EntryConfChangeV2 => ConfChangeV2::parse_from_bytes(&e.data).map_err(proto)?,
    };
    let registration = registration(&change.context)
        .map_err(|err| format!("configuration change {index}: {err}"))?;
    Ok(Committed::ConfChange {
        change,
        registration,
    })
}

/// The command a configuration change carries as its context, if any.
fn registration(context: &[u8]) -> Result<Option<Command>, String> {
    if context.is_empty() {
        return Ok(None);
    }
    match LogEntry::decode(context).map_err(|e| e.to_string())? {
        LogEntry::Command(cmd) => Ok(Some(cmd)),
        LogEntry::V3(_) => Err("a configuration change carries a v3 request".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryType, data: Vec<u8>) -> Entry {
        let mut e = Entry {
            index: 7,
            ..Default::default()
        };
        e.set_entry_type(kind);
        e.data = data.into();
        e
    }

    #[test]
    fn every_kind_of_entry_decodes_once() {
        assert!(matches!(
            decode(&entry(EntryType::EntryNormal, vec![])),
            Ok(Committed::Empty)
        ));
        let cmd = Command::Leave {
            id: 5,
            name: "n2".into(),
        };
        let bytes = cmd.to_entry();
        assert!(matches!(
            decode(&entry(EntryType::EntryNormal, bytes.clone())),
            Ok(Committed::Store(Command::Leave { .. }))
        ));
        // A v1 change comes out as v2, its registration decoded from the context.
        let mut cc = ConfChange {
            node_id: 5,
            context: bytes.into(),
            ..Default::default()
        };
        cc.set_change_type(raft::eraftpb::ConfChangeType::RemoveNode);
        let data = cc.write_to_bytes().unwrap();
        match decode(&entry(EntryType::EntryConfChange, data)) {
            Ok(Committed::ConfChange {
                change,
                registration: Some(Command::Leave { name, .. }),
            }) => {
                assert_eq!(name, "n2");
                assert_eq!(change.changes.len(), 1);
                assert_eq!(change.changes[0].node_id, 5);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_does_not_decode_is_named() {
        let err = decode(&entry(EntryType::EntryNormal, vec![0xee, 1, 2])).unwrap_err();
        assert!(
            err.starts_with("committed entry 7 holds no command this version understands"),
            "{err}"
        );
        let err = decode(&entry(EntryType::EntryConfChangeV2, vec![0xff; 4])).unwrap_err();
        assert!(
            err.starts_with("committed entry 7 does not decode"),
            "{err}"
        );
        let cc = ConfChangeV2 {
            context: vec![0xee].into(),
            ..Default::default()
        };
        let err = decode(&entry(
            EntryType::EntryConfChangeV2,
            cc.write_to_bytes().unwrap(),
        ))
        .unwrap_err();
        assert!(err.starts_with("configuration change 7: "), "{err}");
    }
}
