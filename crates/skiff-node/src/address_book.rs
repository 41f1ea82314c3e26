//! The address book: every member's peer and client addresses, kept in the
//! context of the cluster's configuration ([`Membership::context`]), so
//! that the addresses travel in the log and in snapshots with the
//! membership they belong to.
//!
//! ```text
//! context = version: u8 (1) | postcard of [(id: u64, peer: SocketAddr, client: SocketAddr)]
//! ```
//!
//! The bootstrap configuration (`cluster.toml`'s nodes, before any change)
//! has an empty context: its addresses are `cluster.toml`'s. Every change
//! a node proposes writes the whole book, so any later configuration
//! carries every member's addresses.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use skiff_core::{Membership, NodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The encoding's version byte.
const VERSION: u8 = 1;

/// One member's addresses, as the cluster's configuration records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberAddresses {
    /// Where its peers dial it.
    pub peer: SocketAddr,
    /// Where its clients reach it.
    pub client: SocketAddr,
}

/// Members' addresses by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressBook {
    members: BTreeMap<NodeId, MemberAddresses>,
}

/// Why a configuration's context is not an address book.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressBookError {
    /// The version byte is not one this code reads.
    #[error("address book of version {0}, expected {VERSION}")]
    Version(u8),
    /// The bytes after the version do not decode.
    #[error("undecodable address book: {0}")]
    Body(String),
}

impl AddressBook {
    /// An empty book.
    pub fn new() -> AddressBook {
        AddressBook::default()
    }

    /// The addresses of `id`, if the book has them.
    pub fn get(&self, id: NodeId) -> Option<MemberAddresses> {
        self.members.get(&id).copied()
    }

    /// Records (or replaces) the addresses of `id`.
    pub fn insert(&mut self, id: NodeId, addresses: MemberAddresses) {
        self.members.insert(id, addresses);
    }

    /// Every member and its addresses, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, MemberAddresses)> + '_ {
        self.members.iter().map(|(id, a)| (*id, *a))
    }

    /// The book of `membership`: its context decoded, with the members it
    /// lacks (all of them for the bootstrap configuration, whose context is
    /// empty) taken from `fallback` (`cluster.toml`'s). Entries for nodes
    /// that are not members are left out.
    pub fn of(
        membership: &Membership,
        fallback: &AddressBook,
    ) -> Result<AddressBook, AddressBookError> {
        let recorded = AddressBook::decode(membership.context())?;
        let members = membership
            .members()
            .filter_map(|id| {
                let addresses = recorded.get(id).or_else(|| fallback.get(id))?;
                Some((id, addresses))
            })
            .collect();
        Ok(AddressBook { members })
    }

    /// The book's encoding, for a configuration's context.
    pub fn encode(&self) -> Bytes {
        let members: Vec<(u64, SocketAddr, SocketAddr)> = self
            .members
            .iter()
            .map(|(id, a)| (id.0, a.peer, a.client))
            .collect();
        let mut out = vec![VERSION];
        // Encoding plain integers and addresses into a Vec cannot fail.
        out = postcard::to_extend(&members, out).unwrap_or_else(|_| vec![VERSION, 0]);
        Bytes::from(out)
    }

    /// Decodes a configuration's context; an empty one is an empty book.
    /// Never panics, whatever the bytes.
    pub fn decode(context: &[u8]) -> Result<AddressBook, AddressBookError> {
        let Some((&version, body)) = context.split_first() else {
            return Ok(AddressBook::new());
        };
        if version != VERSION {
            return Err(AddressBookError::Version(version));
        }
        let members: Vec<(u64, SocketAddr, SocketAddr)> =
            postcard::from_bytes(body).map_err(|e| AddressBookError::Body(e.to_string()))?;
        Ok(AddressBook {
            members: members
                .into_iter()
                .map(|(id, peer, client)| (NodeId(id), MemberAddresses { peer, client }))
                .collect(),
        })
    }
}

impl FromIterator<(NodeId, MemberAddresses)> for AddressBook {
    fn from_iter<I: IntoIterator<Item = (NodeId, MemberAddresses)>>(iter: I) -> AddressBook {
        AddressBook {
            members: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(port: u16) -> MemberAddresses {
        MemberAddresses {
            peer: SocketAddr::from(([127, 0, 0, 1], port)),
            client: SocketAddr::from(([127, 0, 0, 1], port + 1000)),
        }
    }

    fn book(ids: &[u64]) -> AddressBook {
        ids.iter()
            .map(|&id| (NodeId(id), addresses(7000 + id as u16)))
            .collect()
    }

    #[test]
    fn a_book_round_trips_and_an_empty_context_is_an_empty_book() {
        let book = book(&[1, 2, 9]);
        assert_eq!(AddressBook::decode(&book.encode()), Ok(book));
        assert_eq!(AddressBook::decode(&[]), Ok(AddressBook::new()));
    }

    #[test]
    fn bad_contexts_are_errors_not_panics() {
        assert_eq!(
            AddressBook::decode(&[2, 0]),
            Err(AddressBookError::Version(2))
        );
        let encoded = book(&[1, 2]).encode();
        for cut in 1..encoded.len() {
            assert!(
                AddressBook::decode(&encoded[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert!(AddressBook::decode(&[VERSION, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn a_configuration_s_book_falls_back_for_members_it_lacks_and_drops_non_members() {
        let ids = |ids: &[u64]| ids.iter().copied().map(NodeId).collect::<Vec<_>>();
        let fallback = book(&[1, 2, 3]);
        let bootstrap = Membership::new(ids(&[1, 2, 3]), vec![]).unwrap();
        assert_eq!(AddressBook::of(&bootstrap, &fallback), Ok(fallback.clone()));
        let mut recorded = book(&[2, 3, 4, 5]);
        recorded.insert(NodeId(2), addresses(9000));
        let changed = Membership::new(ids(&[1, 2, 3]), ids(&[4]))
            .unwrap()
            .with_context(recorded.encode());
        let of = AddressBook::of(&changed, &fallback).unwrap();
        assert_eq!(of.get(NodeId(1)), fallback.get(NodeId(1)));
        assert_eq!(of.get(NodeId(2)), Some(addresses(9000)));
        assert_eq!(of.get(NodeId(4)), recorded.get(NodeId(4)));
        assert_eq!(of.get(NodeId(5)), None, "not a member");
    }
}
