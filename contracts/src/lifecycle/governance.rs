//! Governance transitions: an organisation's admin proposes a change to the
//! consortium, admins of other organisations approve it, and the approval
//! that reaches the threshold executes it; an organisation takes its own
//! node out alone. See [`crate::governance`] for the records.

use super::{Ctx, Signer, Step, Stop};
use crate::crypto::PublicKey;
use crate::genesis::{Genesis, OrgDecl};
use crate::governance::{
    consortium_key, proposal_index_key, proposal_key, threshold, Action, ConsortiumRecord, Proposal,
};
use crate::rejection::Rejection;
use crate::state::{staff_key, Overlay};
use crate::tx::{Approve, LeaveNode, Propose, TxId};

/// The organisation whose admin signs: only organisation admins take part
/// in governance.
pub(super) fn need_admin<'g>(signer: &Signer<'g>) -> Result<&'g OrgDecl, Rejection> {
    match signer {
        Signer::Admin(o) => Ok(o),
        Signer::Staff(s) => Err(Rejection::NotOrgAdmin { org: s.org.clone() }),
        Signer::Other => Err(Rejection::UnknownSigner),
    }
}

/// Records a proposal with the proposer's approval, and executes it at once
/// when that alone reaches the threshold. The action is checked against the
/// consortium now, so a proposal that could not execute is refused up front.
pub(super) fn propose(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &Propose) -> Step {
    let org = need_admin(&cx.signer)?;
    if b.expires_at <= cx.now {
        return Err(Rejection::ProposalExpired { at: b.expires_at }.into());
    }
    decide(cx.g, st, &b.action)?;
    let mut p = Proposal {
        id: cx.tx,
        action: b.action.clone(),
        proposer: org.id.clone(),
        proposed_at: cx.now,
        expires_at: b.expires_at,
        approvals: vec![org.id.clone()],
        executed_at: None,
    };
    execute_if_reached(cx, st, &mut p)?;
    let mut index: Vec<TxId> = st.get(&proposal_index_key())?.unwrap_or_default();
    index.push(cx.tx);
    st.put(proposal_index_key(), &index);
    st.put(proposal_key(&cx.tx), &p);
    Ok(())
}

/// Adds the signer's organisation to an open proposal's approvals, and
/// executes it when they reach the threshold.
pub(super) fn approve(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &Approve) -> Step {
    let org = need_admin(&cx.signer)?;
    let Some(mut p) = st.get::<Proposal>(&proposal_key(&b.proposal))? else {
        return Err(Rejection::UnknownProposal.into());
    };
    if let Some(at) = p.executed_at {
        return Err(Rejection::ProposalExecuted { at }.into());
    }
    if cx.now >= p.expires_at {
        return Err(Rejection::ProposalExpired { at: p.expires_at }.into());
    }
    if p.approvals.contains(&org.id) {
        return Err(Rejection::AlreadyApproved {
            org: org.id.clone(),
        }
        .into());
    }
    p.approvals.push(org.id.clone());
    execute_if_reached(cx, st, &mut p)?;
    st.put(proposal_key(&p.id), &p);
    Ok(())
}

/// Takes one of the signer's own nodes out of the consortium at once.
pub(super) fn leave(cx: &Ctx<'_>, st: &mut Overlay<'_>, b: &LeaveNode) -> Step {
    let org = need_admin(&cx.signer)?;
    match cx.g.org_of_node(b.node) {
        None => return Err(Rejection::UnknownNode { node: b.node }.into()),
        Some(owner) if owner.id != org.id => {
            return Err(Rejection::NotYourNode {
                node: b.node,
                org: owner.id.clone(),
            }
            .into())
        }
        Some(_) => {}
    }
    let next = decide(cx.g, st, &Action::RemoveNode { node: b.node })?;
    store(st, &next);
    Ok(())
}

/// Executes `p` when its approvals from member organisations reach the
/// threshold of the consortium in force.
fn execute_if_reached(cx: &Ctx<'_>, st: &mut Overlay<'_>, p: &mut Proposal) -> Step {
    let counted = p.approvals.iter().filter(|o| cx.g.org(o).is_some()).count();
    if counted >= threshold(cx.g) {
        let next = decide(cx.g, st, &p.action)?;
        store(st, &next);
        p.executed_at = Some(cx.now);
    }
    Ok(())
}

fn store(st: &mut Overlay<'_>, next: &Genesis) {
    st.put(
        consortium_key(),
        &ConsortiumRecord {
            orgs: next.orgs.clone(),
            params: next.params.clone(),
        },
    );
}

/// Whether `key` already serves the consortium: an admin or data key, or a
/// registered staff key.
fn key_in_use(g: &Genesis, st: &Overlay<'_>, key: &PublicKey) -> bool {
    g.orgs
        .iter()
        .any(|o| &o.admin_key == key || &o.data_key == key)
        || st.get_raw(&staff_key(key)).is_some()
}

/// Refuses a node whose id or key is already declared.
fn node_is_new(g: &Genesis, id: crate::model::NodeId, key: &PublicKey) -> Result<(), Rejection> {
    let taken = g
        .orgs
        .iter()
        .flat_map(|o| &o.nodes)
        .any(|n| n.id == id || &n.key == key);
    if taken {
        Err(Rejection::NodeExists { node: id })
    } else {
        Ok(())
    }
}

/// The consortium after `action`, or why it cannot be taken.
fn decide(g: &Genesis, st: &Overlay<'_>, action: &Action) -> Result<Genesis, Stop> {
    let mut next = g.clone();
    match action {
        Action::AddNode { org, node } => {
            node_is_new(g, node.id, &node.key)?;
            let Some(o) = next.orgs.iter_mut().find(|o| &o.id == org) else {
                return Err(Rejection::UnknownOrg { org: org.clone() }.into());
            };
            o.nodes.push(node.clone());
        }
        Action::RemoveNode { node } => {
            if g.node(*node).is_none() {
                return Err(Rejection::UnknownNode { node: *node }.into());
            }
            for o in &mut next.orgs {
                o.nodes.retain(|n| n.id != *node);
            }
        }
        Action::AddOrg { org } => {
            if g.org(&org.id).is_some() {
                return Err(Rejection::OrgExists {
                    org: org.id.clone(),
                }
                .into());
            }
            if key_in_use(g, st, &org.admin_key)
                || key_in_use(g, st, &org.data_key)
                || org.admin_key == org.data_key
            {
                return Err(Rejection::KeyInUse.into());
            }
            for n in &org.nodes {
                node_is_new(g, n.id, &n.key)?;
            }
            next.orgs.push(org.clone());
        }
        Action::RotateAdminKey { org, key } => {
            if g.org(org).is_none() {
                return Err(Rejection::UnknownOrg { org: org.clone() }.into());
            }
            if key_in_use(g, st, key) {
                return Err(Rejection::KeyInUse.into());
            }
            for o in &mut next.orgs {
                if &o.id == org {
                    o.admin_key = *key;
                }
            }
        }
        Action::RotateNodeKeys { node } => {
            if g.node(node.id).is_none() {
                return Err(Rejection::UnknownNode { node: node.id }.into());
            }
            for o in &mut next.orgs {
                for n in &mut o.nodes {
                    if n.id == node.id {
                        *n = node.clone();
                    }
                }
            }
        }
        Action::SetParams { params } => next.params = params.clone(),
    }
    match next.validate() {
        Ok(()) => Ok(next),
        // Two nodes sharing a key after a rotation is the one duplicate the
        // checks above cannot see: it names the rotated node.
        Err(crate::genesis::GenesisError::DuplicateNode(_)) => {
            let node = match action {
                Action::RotateNodeKeys { node } => node.id,
                Action::AddNode { node, .. } => node.id,
                _ => 0,
            };
            Err(Rejection::NodeExists { node }.into())
        }
        Err(e) => Err(Rejection::InvalidConsortium {
            reason: e.to_string(),
        }
        .into()),
    }
}
