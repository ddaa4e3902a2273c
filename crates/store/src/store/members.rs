//! The membership family: `Join` (a member added, or naming itself once it runs),
//! `AddLearner` and `Promote` (a learner added, then made a voter), `Leave`, `UpdatePeer`.
//! Each member is also the v1 key `/_etcd/machines/<name>` (`raft=<peer URL>&etcd=<client
//! URL>`), written at the same index.

use super::{Fired, Outcome, Store};
use crate::command::Command;
use crate::error::Error;
use crate::event::Action;
use crate::member::Member;
use crate::{path, Index};

impl<W> Store<W> {
    /// Applies a membership command.
    pub(super) fn apply_members(
        &mut self,
        index: Index,
        cmd: &Command,
        fired: &mut Fired<W>,
    ) -> Outcome {
        match cmd {
            Command::Join { id, .. } if self.removed.contains(id) => {
                // A late registration of a member removed meanwhile: it stays removed.
                Ok(None)
            }
            Command::Join {
                id,
                name,
                raft_url,
                etcd_url,
            } => {
                if self.members.is_empty() && self.removed.is_empty() {
                    // The first member names the cluster for good.
                    self.cluster_id = crate::member::cluster_id_of(*id);
                }
                // A learner naming itself stays a learner.
                let learner = self.members.get(id).is_some_and(|m| m.learner);
                self.members.insert(
                    *id,
                    Member {
                        name: name.clone(),
                        raft_url: raft_url.clone(),
                        etcd_url: etcd_url.clone(),
                        learner,
                    },
                );
                if name.is_empty() {
                    // Added through `POST /v2/members`: registered once it starts and joins.
                    return Ok(None);
                }
                let key = path::join(path::MACHINES_DIR, name);
                let value = format!("raft={raft_url}&etcd={etcd_url}");
                self.tree
                    .check_parents(&key)
                    .map_err(|_| Error::NotFile(key.clone()))
                    .and_then(|()| match self.tree.get(&key) {
                        Some(n) if n.is_dir() => Err(Error::NotFile(key.clone())),
                        _ => Ok(()),
                    })
                    .map(|()| {
                        Some(self.write_file(index, &key, value, None, Action::Set, 0, fired))
                    })
            }
            Command::AddLearner { id, .. } if self.removed.contains(id) => Ok(None),
            Command::AddLearner { id, raft_url } => {
                self.members.insert(
                    *id,
                    Member {
                        name: String::new(),
                        raft_url: raft_url.clone(),
                        etcd_url: String::new(),
                        learner: true,
                    },
                );
                Ok(None)
            }
            Command::Promote { id } => {
                if let Some(m) = self.members.get_mut(id) {
                    m.learner = false;
                }
                Ok(None)
            }
            Command::Leave { id, name } => {
                self.members.remove(id);
                self.removed.insert(*id);
                if name.is_empty() {
                    Ok(None)
                } else {
                    let key = path::join(path::MACHINES_DIR, name);
                    self.v1_delete(index, &key, fired).map(Some)
                }
            }
            Command::UpdatePeer { id, raft_url } => {
                let update = self
                    .members
                    .get(id)
                    .map(|m| (m.name.clone(), m.etcd_url.clone()));
                match update {
                    Some((name, etcd_url)) => {
                        if let Some(m) = self.members.get_mut(id) {
                            m.raft_url = raft_url.clone();
                        }
                        if name.is_empty() {
                            Ok(None)
                        } else {
                            let key = path::join(path::MACHINES_DIR, &name);
                            let value = format!("raft={raft_url}&etcd={etcd_url}");
                            Ok(Some(self.write_file(
                                index,
                                &key,
                                value,
                                None,
                                Action::Set,
                                0,
                                fired,
                            )))
                        }
                    }
                    None => Err(Error::KeyNotFound(format!("member {id:x}"))),
                }
            }
            _ => unreachable!("not a membership command"),
        }
    }
}
