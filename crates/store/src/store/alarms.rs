//! The `v3` alarms (etcd 3.4 `etcdserver/api/v3alarm`, `etcdserver/apply.go`): NOSPACE, raised
//! when a member finds the keyspace over its quota, and CORRUPT, raised when members' hashes
//! differ. Alarms are raised, cleared and listed through the log, so every member holds the
//! same set; they are in snapshots.
//!
//! While one is active, writes are refused as etcd's "capped" and "corrupt" appliers refuse
//! them, alike on every member: under NOSPACE, puts, txns with a put and lease grants get
//! `database space exceeded` (deletes, compaction and revocations still go, to free space);
//! under CORRUPT, every keyspace and lease write gets `corrupt cluster`. Alarm requests
//! themselves always apply, so an alarm can be cleared.

use etcd_mvcc::pb::alarm_request::AlarmAction;
use etcd_mvcc::pb::request_op::Request as Op;
use etcd_mvcc::pb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType, TxnRequest};
use etcd_mvcc::{header, Error};
use etcd_v3proto::etcdrs::internal_request::Request;

use super::Store;

impl<W> Store<W> {
    /// The active alarms, by member then type (etcd's order).
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.alarms
            .iter()
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether an alarm of `kind` is active, on any member.
    pub fn alarmed(&self, kind: AlarmType) -> bool {
        self.alarms.iter().any(|&(_, a)| a == kind as i32)
    }

    /// Applies an alarm request: lists (type NONE: all), raises or clears one. The answer
    /// holds the alarms listed, the alarm raised (new or already there), or the alarm
    /// cleared (nothing if it was not active).
    pub(super) fn apply_alarm(&mut self, a: &AlarmRequest) -> AlarmResponse {
        let this = (a.member_id, a.alarm);
        let alarms = match AlarmAction::try_from(a.action) {
            Ok(AlarmAction::Get) => self
                .alarms()
                .into_iter()
                .filter(|m| a.alarm == AlarmType::None as i32 || m.alarm == a.alarm)
                .collect(),
            Ok(AlarmAction::Activate) if a.alarm != AlarmType::None as i32 => {
                self.alarms.insert(this);
                vec![member(this)]
            }
            Ok(AlarmAction::Deactivate) if self.alarms.remove(&this) => vec![member(this)],
            _ => Vec::new(),
        };
        AlarmResponse {
            header: Some(header(self.v3.revision())),
            alarms,
        }
    }

    /// The error an active alarm makes of `req`, if any (see the module docs).
    pub(super) fn refused_by_alarm(&self, req: &Option<Request>) -> Option<Error> {
        if self.alarms.is_empty() {
            return None;
        }
        let writes = !matches!(req, Some(Request::Alarm(_)) | None);
        if writes && self.alarmed(AlarmType::Corrupt) {
            return Some(Error::Corrupt);
        }
        let grows = match req {
            Some(Request::Put(_)) | Some(Request::LeaseGrant(_)) => true,
            Some(Request::Txn(t)) => puts(t),
            _ => false,
        };
        (grows && self.alarmed(AlarmType::Nospace)).then_some(Error::NoSpace)
    }
}

fn member((member_id, alarm): (u64, i32)) -> AlarmMember {
    AlarmMember { member_id, alarm }
}

/// Whether a txn puts anything in either branch (etcd counts a txn's puts at its top level
/// only).
pub fn puts(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| matches!(op.request, Some(Op::RequestPut(_))))
}

#[cfg(test)]
mod tests {
    use etcd_mvcc::pb::request_op::Request as Op;
    use etcd_mvcc::pb::{
        CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RequestOp,
    };
    use etcd_mvcc::Answer;
    use etcd_v3proto::etcdrs::InternalRequest;

    use super::*;
    use crate::Index;

    struct S {
        store: Store<()>,
        index: Index,
    }

    impl S {
        fn apply(&mut self, req: Request) -> etcd_mvcc::Result<Answer> {
            self.index += 1;
            let req = InternalRequest {
                request: Some(req),
                ..Default::default()
            };
            self.store.apply_v3(self.index, req).result
        }

        fn alarm(
            &mut self,
            action: AlarmAction,
            member_id: u64,
            alarm: AlarmType,
        ) -> Vec<AlarmMember> {
            match self.apply(Request::Alarm(AlarmRequest {
                action: action as i32,
                member_id,
                alarm: alarm as i32,
            })) {
                Ok(Answer::Alarm(r)) => r.alarms,
                other => panic!("{other:?}"),
            }
        }

        fn put(&mut self, key: &str) -> etcd_mvcc::Result<Answer> {
            self.apply(Request::Put(PutRequest {
                key: key.as_bytes().to_vec().into(),
                ..Default::default()
            }))
        }
    }

    fn txn(op: Op) -> Request {
        Request::Txn(TxnRequest {
            success: vec![RequestOp { request: Some(op) }],
            ..Default::default()
        })
    }

    #[test]
    fn nospace_refuses_what_grows_the_keyspace_until_it_is_cleared() {
        let mut s = S {
            store: Store::new(16),
            index: 0,
        };
        s.put("a").unwrap();
        let raised = s.alarm(AlarmAction::Activate, 7, AlarmType::Nospace);
        assert_eq!(raised, [member((7, AlarmType::Nospace as i32))]);
        assert!(s.store.alarmed(AlarmType::Nospace));
        assert_eq!(s.put("b").unwrap_err(), Error::NoSpace);
        let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 5 });
        assert_eq!(s.apply(grant.clone()).unwrap_err(), Error::NoSpace);
        let put = Op::RequestPut(PutRequest {
            key: b"c".to_vec().into(),
            ..Default::default()
        });
        assert_eq!(s.apply(txn(put.clone())).unwrap_err(), Error::NoSpace);
        // What frees space still goes.
        let delete = Op::RequestDeleteRange(DeleteRangeRequest {
            key: b"a".to_vec().into(),
            ..Default::default()
        });
        assert!(s.apply(txn(delete)).is_ok());
        assert!(s
            .apply(Request::Compaction(CompactionRequest {
                revision: 2,
                physical: false
            }))
            .is_ok());
        // Listed; cleared (a second clear clears nothing); writes go again.
        assert_eq!(s.alarm(AlarmAction::Get, 0, AlarmType::None).len(), 1);
        assert_eq!(s.alarm(AlarmAction::Get, 0, AlarmType::Corrupt).len(), 0);
        assert_eq!(
            s.alarm(AlarmAction::Deactivate, 7, AlarmType::Nospace)
                .len(),
            1
        );
        assert_eq!(
            s.alarm(AlarmAction::Deactivate, 7, AlarmType::Nospace)
                .len(),
            0
        );
        assert!(s.put("b").is_ok());
        assert!(s.apply(grant).is_ok());
        assert!(s.apply(txn(put)).is_ok());
    }

    #[test]
    fn corrupt_refuses_every_write_and_alarms_come_back_from_a_snapshot() {
        let mut s = S {
            store: Store::new(16),
            index: 0,
        };
        s.alarm(AlarmAction::Activate, 3, AlarmType::Corrupt);
        s.alarm(AlarmAction::Activate, 9, AlarmType::Nospace);
        assert_eq!(s.put("a").unwrap_err(), Error::Corrupt);
        let delete = Request::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec().into(),
            ..Default::default()
        });
        assert_eq!(s.apply(delete.clone()).unwrap_err(), Error::Corrupt);
        let mut restored: Store<()> = Store::new(16);
        restored
            .restore(crate::snapshot::StoreSnapshot::decode(&s.store.snapshot().encode()).unwrap());
        assert_eq!(restored.alarms(), s.store.alarms());
        s.alarm(AlarmAction::Deactivate, 3, AlarmType::Corrupt);
        assert!(s.apply(delete).is_ok());
    }
}
