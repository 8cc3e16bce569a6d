//! The dealer: a realm's registrations and the calls in flight.
//!
//! A registration belongs to the realm, shared by the callees of one (URI, match) when they
//! agree on a shared `invoke` policy (WAMP v2 advanced, "Shared Registration"; Crossbar
//! `dealer.py` `processRegister`). A call picks a registration (exact, then the longest prefix,
//! then a wildcard: `uri::PatternIndex::best_match`) and a callee by the policy, and lives as
//! a `Call` until the callee's final YIELD or ERROR, a cancel, a timeout, or one side leaving:
//!
//! ```text
//! CALL -> INVOCATION --YIELD progress--> RESULT progress (stays)
//!              |--YIELD / ERROR--> RESULT / ERROR to the caller (ends)
//!              |--CANCEL skip--> ERROR canceled (ends; the late answer is dropped)
//!              |--CANCEL killnowait--> INTERRUPT, ERROR canceled (ends; likewise)
//!              |--CANCEL kill--> INTERRUPT, kill_requested (the callee's answer ends it)
//!              |--timeout--> ERROR timeout, INTERRUPT killnowait (ends)
//!              |--callee gone--> ERROR canceled (ends)
//!              `--caller gone--> INTERRUPT killnowait (ends; the late answer is dropped)
//! ```
//!
//! INTERRUPT goes only to callees that announced `call_canceling` (WAMP v2 advanced, "Call
//! Canceling": "If the callee does not support call canceling, then behavior is skip"). An
//! answer for an invocation that is not pending is dropped without harm to the callee
//! (Crossbar bugs #2133 and #2153 killed the callee's session for it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::router::auth;
use crate::router::dynamic::{Outcome, ROUTER_CALLER};
use crate::router::error::{Refusal, Violation};
use crate::router::ids::SequentialIds;
use crate::router::nodes;
use crate::router::options::{CallOptions, CancelMode, Invoke, RegisterOptions, yield_progress};
use crate::router::realm::{Ctx, Realm, iso8601};
use crate::router::uri::{self, Match, PatternIndex};
use crate::wamp::{Dict, Message, MessageType, Payload, Value};

/// WAMP v2 advanced, "Call Timeouts": "The error message that is returned to the Caller MUST
/// use `wamp.error.timeout` as the reason URI." (Crossbar answers `wamp.error.canceled`.)
pub const TIMEOUT_ERROR: &str = "wamp.error.timeout";
pub const CANCELED_ERROR: &str = "wamp.error.canceled";

#[derive(Debug)]
pub struct Registration {
    pub id: u64,
    pub uri: String,
    pub policy: Match,
    pub invoke: Invoke,
    pub created: String,
    /// Callee session ids in registration order (`first` is the oldest).
    pub callees: Vec<u64>,
    next_roundrobin: usize,
}

/// A call in flight.
#[derive(Debug, Clone)]
pub struct Call {
    pub caller: u64,
    /// The caller's CALL request id (its RESULT/ERROR carry it back).
    pub caller_request: u64,
    pub callee: u64,
    /// The INVOCATION request id (callee session scope).
    pub invocation: u64,
    pub deadline: Option<Instant>,
    /// CANCEL mode kill was passed on: the callee's answer ends the call.
    pub kill_requested: bool,
}

#[derive(Debug, Default)]
pub struct Dealer {
    registrations: HashMap<u64, Registration>,
    index: PatternIndex,
    calls: HashMap<u64, Call>,
    /// (callee, invocation) -> call.
    by_invocation: BTreeMap<(u64, u64), u64>,
    /// (caller, request) -> call.
    by_request: BTreeMap<(u64, u64), u64>,
    deadlines: BTreeSet<(Instant, u64)>,
    call_keys: SequentialIds,
}

impl Dealer {
    pub fn registration_count(&self) -> usize {
        self.registrations.len()
    }

    pub fn pending_count(&self) -> usize {
        self.calls.len()
    }

    pub fn get(&self, id: u64) -> Option<&Registration> {
        self.registrations.get(&id)
    }

    pub fn lookup(&self, uri: &str, policy: Match) -> Option<&Registration> {
        self.registrations.get(&self.index.get(uri, policy)?)
    }

    pub fn best_match(&self, uri: &str) -> Option<&Registration> {
        self.registrations.get(&self.index.best_match(uri)?)
    }

    /// `best_match` among the registrations `accept` takes.
    pub fn best_match_where(
        &self,
        uri: &str,
        accept: impl Fn(&Registration) -> bool,
    ) -> Option<&Registration> {
        let id = self
            .index
            .best_match_where(uri, |id| self.registrations.get(&id).is_some_and(&accept))?;
        self.registrations.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.registrations.values()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// Removes `session` from registration `id`: `None` when it was not a callee, else
    /// whether the registration went with it.
    pub fn unregister(&mut self, id: u64, session: u64) -> Option<bool> {
        let registration = self.registrations.get_mut(&id)?;
        let position = registration.callees.iter().position(|&s| s == session)?;
        registration.callees.remove(position);
        if position < registration.next_roundrobin {
            registration.next_roundrobin -= 1;
        }
        if !registration.callees.is_empty() {
            return Some(false);
        }
        if let Some(registration) = self.registrations.remove(&id) {
            self.index.remove(&registration.uri, registration.policy);
        }
        Some(true)
    }

    fn insert_call(&mut self, call: Call) -> u64 {
        let key = self.call_keys.next_id();
        self.by_invocation
            .insert((call.callee, call.invocation), key);
        self.by_request
            .insert((call.caller, call.caller_request), key);
        if let Some(deadline) = call.deadline {
            self.deadlines.insert((deadline, key));
        }
        self.calls.insert(key, call);
        key
    }

    fn remove_call(&mut self, key: u64) -> Option<Call> {
        let call = self.calls.remove(&key)?;
        self.by_invocation.remove(&(call.callee, call.invocation));
        self.by_request.remove(&(call.caller, call.caller_request));
        if let Some(deadline) = call.deadline {
            self.deadlines.remove(&(deadline, key));
        }
        Some(call)
    }

    fn calls_of(map: &BTreeMap<(u64, u64), u64>, session: u64) -> Vec<u64> {
        map.range((session, 0)..=(session, u64::MAX))
            .map(|(_, &key)| key)
            .collect()
    }
}

fn interrupt(invocation: u64, mode: CancelMode) -> Message {
    let mut options = Dict::new();
    options.insert("mode", Value::from(mode.name()));
    Message::Interrupt {
        request: invocation,
        options,
    }
}

/// RESULT with `args`, or the refusal's ERROR, for CALL `request` the router answers itself.
pub fn call_answer(request: u64, answer: Result<Vec<Value>, Refusal>) -> Message {
    match answer {
        Ok(args) => Message::Result {
            request,
            details: Dict::new(),
            payload: Payload {
                args,
                kwargs: Dict::new(),
            },
        },
        Err(refusal) => crate::router::realm::refusal_message(MessageType::Call, request, &refusal),
    }
}

fn call_error(caller_request: u64, error: &str, text: &str) -> Message {
    Message::Error {
        request_type: MessageType::Call,
        request: caller_request,
        details: Dict::new(),
        error: error.to_owned(),
        payload: Payload {
            args: vec![Value::from(text)],
            kwargs: Dict::new(),
        },
    }
}

impl Realm {
    fn callee_cancels(&self, callee: u64) -> bool {
        self.sessions
            .get(&callee)
            .is_some_and(|session| session.features.callee_call_canceling)
    }

    /// Ends call `key`, keeping the sessions' counters.
    fn end_call(&mut self, key: u64) -> Option<Call> {
        let call = self.dealer.remove_call(key)?;
        if let Some(caller) = self.sessions.get_mut(&call.caller) {
            caller.calls_as_caller = caller.calls_as_caller.saturating_sub(1);
        }
        if let Some(callee) = self.sessions.get_mut(&call.callee) {
            callee.calls_as_callee = callee.calls_as_callee.saturating_sub(1);
        }
        Some(call)
    }

    pub(super) fn on_register(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        request: u64,
        options: &Dict,
        procedure: &str,
    ) -> Result<(), Violation> {
        let options = RegisterOptions::parse(options)?;
        let Some(session) = self.sessions.get(&id) else {
            return Ok(());
        };
        let refusal = if let Err(error) =
            uri::check(procedure, options.policy, ctx.config.strict_uris)
        {
            Some(Refusal::InvalidUri {
                uri: procedure.to_owned(),
                error,
            })
        } else if procedure.starts_with("wamp.") && !session.is_backend() {
            // Crossbar `dealer.py`: "disallow registration of procedures starting with
            // "wamp." other than for trusted sessions".
            Some(Refusal::RestrictedUri {
                uri: procedure.to_owned(),
            })
        } else if !self
            .authorization(ctx, id, procedure, auth::Action::Register)
            .allow
        {
            // Crossbar `dealer.py` `processRegister`: `router.authorize` after the URI checks.
            Some(Refusal::NotAuthorized {
                action: "register",
                uri: procedure.to_owned(),
            })
        } else if options.policy == Match::Exact && Self::is_meta_procedure(procedure) {
            // The router's service session holds them in Crossbar.
            Some(Refusal::ProcedureAlreadyExists {
                procedure: procedure.to_owned(),
            })
        } else {
            match self.dealer.lookup(procedure, options.policy) {
                Some(existing) if existing.invoke == Invoke::Single => {
                    Some(Refusal::ProcedureAlreadyExists {
                        procedure: procedure.to_owned(),
                    })
                }
                Some(existing) if existing.invoke != options.invoke => {
                    Some(Refusal::InvocationPolicyConflict {
                        procedure: procedure.to_owned(),
                        existing: existing.invoke.name(),
                        requested: options.invoke.name(),
                    })
                }
                Some(existing) if existing.callees.contains(&id) => None,
                Some(_) | None
                    if session.registrations.len() >= ctx.config.max_registrations_per_session =>
                {
                    Some(Refusal::TooManyRegistrations {
                        max: ctx.config.max_registrations_per_session,
                    })
                }
                Some(_) | None => None,
            }
        };
        if let Some(refusal) = refusal {
            self.send(
                id,
                crate::router::realm::refusal_message(MessageType::Register, request, &refusal),
                ctx.out,
            );
            return Ok(());
        }
        let (registration, created, added) = self.add_callee(ctx, id, procedure, options);
        let registered = Message::Registered {
            request,
            registration,
        };
        if added
            && self.local_callees(registration) == 1
            && self.announce_registration(ctx, procedure, options, true)
        {
            // REGISTERED once every node has heard: a call or a `single` REGISTER that
            // follows it from any node finds the registration (`nodes`).
            ctx.held_replies.push((id, registered));
        } else {
            self.send(id, registered, ctx.out);
        }
        // Crossbar `dealer.py` `processRegister`: on_create for a new registration, then
        // on_register; none for `wamp.` procedures.
        if !procedure.starts_with("wamp.") {
            if created && let Some(details) = self.registration_details(registration) {
                self.meta_event(
                    ctx,
                    "wamp.registration.on_create",
                    vec![Value::from(id), Value::Dict(details)],
                );
            }
            if added {
                self.meta_event(
                    ctx,
                    "wamp.registration.on_register",
                    vec![Value::from(id), Value::from(registration)],
                );
            }
        }
        Ok(())
    }

    /// Makes session `id` a callee of (`procedure`, `options.policy`), creating the
    /// registration if there is none; the caller checked that it may. Returns the
    /// registration, whether it was created, and whether the session was added to it.
    pub(super) fn add_callee(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        procedure: &str,
        options: RegisterOptions,
    ) -> (u64, bool, bool) {
        let (registration, created) = match self.dealer.index.get(procedure, options.policy) {
            Some(existing) if self.dealer.registrations.contains_key(&existing) => {
                (existing, false)
            }
            Some(_) | None => {
                let registration = ctx.router_ids.next_id();
                self.dealer
                    .index
                    .insert(procedure, options.policy, registration);
                self.dealer.registrations.insert(
                    registration,
                    Registration {
                        id: registration,
                        uri: procedure.to_owned(),
                        policy: options.policy,
                        invoke: options.invoke,
                        created: iso8601(ctx.wall_now),
                        callees: Vec::new(),
                        next_roundrobin: 0,
                    },
                );
                (registration, true)
            }
        };
        let added = match self.dealer.registrations.get_mut(&registration) {
            Some(entry) if !entry.callees.contains(&id) => {
                entry.callees.push(id);
                true
            }
            Some(_) | None => false,
        };
        if added && let Some(session) = self.sessions.get_mut(&id) {
            session.registrations.push(registration);
        }
        (registration, created, added)
    }

    /// Removes session `id` from registration `registration` (see `Dealer::unregister`)
    /// and, when that took this node's last callee of it, tells the other nodes.
    pub(super) fn remove_callee(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        registration: u64,
    ) -> Option<bool> {
        let options = self.dealer.get(registration).map(|r| {
            let options = RegisterOptions {
                policy: r.policy,
                invoke: r.invoke,
            };
            (r.uri.clone(), options)
        });
        let deleted = self.dealer.unregister(registration, id)?;
        if let Some(session) = self.sessions.get_mut(&id) {
            session.registrations.retain(|&r| r != registration);
        }
        if let Some((uri, options)) = options
            && self.sessions.get(&id).is_none_or(|s| !s.is_node())
            && (deleted || self.local_callees(registration) == 0)
        {
            self.announce_registration(ctx, &uri, options, false);
        }
        Some(deleted)
    }

    pub(super) fn on_unregister(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        request: u64,
        registration: u64,
    ) {
        let meta = self
            .dealer
            .get(registration)
            .is_some_and(|r| r.uri.starts_with("wamp."));
        match self.remove_callee(ctx, id, registration) {
            None => {
                let refusal = Refusal::NoSuchRegistration { registration };
                self.send(
                    id,
                    crate::router::realm::refusal_message(
                        MessageType::Unregister,
                        request,
                        &refusal,
                    ),
                    ctx.out,
                );
            }
            Some(deleted) => {
                self.send(id, Message::Unregistered { request }, ctx.out);
                if !meta {
                    self.meta_event(
                        ctx,
                        "wamp.registration.on_unregister",
                        vec![Value::from(id), Value::from(registration)],
                    );
                    if deleted {
                        self.meta_event(
                            ctx,
                            "wamp.registration.on_delete",
                            vec![Value::from(id), Value::from(registration)],
                        );
                    }
                }
            }
        }
    }

    /// The callee a call to registration `id` goes to, by its `invoke` policy, skipping
    /// callees with `max` invocations pending. Another node's router counts as one callee
    /// (its own callees are bounded there); `local_only` skips them (a call that another
    /// node passed on goes to a callee here, never on to a third node).
    fn pick_callee(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        max: usize,
        local_only: bool,
    ) -> Result<u64, Refusal> {
        let sessions = &self.sessions;
        // Without `local_only` every callee is eligible: no lookup on the common path.
        let eligible =
            |callee: &u64| !local_only || sessions.get(callee).is_some_and(|s| !s.is_node());
        let free = |callee: &u64| {
            sessions
                .get(callee)
                .is_some_and(|s| s.is_node() || s.calls_as_callee < max)
        };
        let available = |callee: &u64| eligible(callee) && free(callee);
        let Some(registration) = self.dealer.registrations.get_mut(&id) else {
            return Err(Refusal::NoSuchProcedure {
                procedure: String::new(),
            });
        };
        let busy = || Refusal::NoAvailableCallee {
            procedure: registration.uri.clone(),
            max,
        };
        let mut candidates = registration.callees.iter().copied().filter(eligible);
        let picked = match registration.invoke {
            Invoke::Single | Invoke::First => candidates.next().filter(free),
            Invoke::Last => candidates.next_back().filter(free),
            Invoke::RoundRobin => {
                let len = registration.callees.len();
                let start = registration.next_roundrobin;
                let found = (0..len)
                    .map(|offset| (start + offset) % len)
                    .find(|&index| registration.callees.get(index).is_some_and(available));
                found.and_then(|index| {
                    registration.next_roundrobin = (index + 1) % len;
                    registration.callees.get(index).copied()
                })
            }
            Invoke::Random => {
                let count = registration.callees.iter().filter(|c| available(c)).count();
                let nth = ctx.global_ids.below(count);
                registration
                    .callees
                    .iter()
                    .filter(|c| available(c))
                    .nth(nth)
                    .copied()
            }
        };
        picked.ok_or_else(busy)
    }

    pub(super) fn on_call(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        request: u64,
        options: &Dict,
        procedure: String,
        payload: Payload,
    ) -> Result<(), Violation> {
        let raw_options = options;
        let options = CallOptions::parse(options)?;
        if self.dealer.by_request.contains_key(&(id, request)) {
            // WAMP v2, "Protocol errors": "Receiving message with non-sequential session
            // scope request ID": this one is still in flight.
            return Err(Violation::RequestInFlight {
                message: "CALL",
                request,
            });
        }
        if !self.sessions.contains_key(&id) {
            return Ok(());
        }
        let refuse = |realm: &Realm, refusal: Refusal, out: &mut Vec<crate::router::Action>| {
            realm.send(
                id,
                crate::router::realm::refusal_message(MessageType::Call, request, &refusal),
                out,
            );
        };
        if let Err(error) = uri::check(&procedure, Match::Exact, ctx.config.strict_uris) {
            let refusal = Refusal::InvalidUri {
                uri: procedure,
                error,
            };
            refuse(self, refusal, ctx.out);
            return Ok(());
        }
        // Crossbar `dealer.py` `processCall`: `router.authorize` before anything is looked
        // up, meta procedures included.
        let authorization = self.authorization(ctx, id, &procedure, auth::Action::Call);
        if !authorization.allow {
            let refusal = Refusal::NotAuthorized {
                action: "call",
                uri: procedure,
            };
            refuse(self, refusal, ctx.out);
            return Ok(());
        }
        // The meta procedures are the router's own (Crossbar's service session registers
        // them); they answer at once.
        if let Some(answer) = self.meta_call(ctx, id, &procedure, &payload) {
            let from_node = self.sessions.get(&id).is_some_and(|s| s.is_node());
            if ctx.clustered && !from_node && nodes::asks_other_nodes(&procedure, &answer) {
                // The other nodes answer for their sessions (`nodes`, "Meta procedures").
                ctx.gathers.push(nodes::Gather {
                    caller: id,
                    request,
                    procedure,
                    payload,
                    local: answer,
                });
                return Ok(());
            }
            self.send(id, call_answer(request, answer), ctx.out);
            return Ok(());
        }
        let Some(caller) = self.sessions.get(&id) else {
            return Ok(());
        };
        // Another node's router carries the calls of all its sessions (each bounded there).
        let from_node = caller.is_node();
        if !from_node && caller.calls_as_caller >= ctx.config.max_pending_calls_per_session {
            let refusal = Refusal::TooManyPendingCalls {
                max: ctx.config.max_pending_calls_per_session,
            };
            refuse(self, refusal, ctx.out);
            return Ok(());
        }
        // The permission's `disclose` discloses the caller whatever it asked (Crossbar
        // `dealer.py`: "if authorization['disclose']: disclose = True").
        let disclose = options.disclose_me || caller.is_backend() || authorization.disclose;
        let disclosed_caller = if from_node {
            // Its node decided, and says who it is when it disclosed the caller.
            nodes::forwarded_caller(raw_options)
        } else if disclose {
            Some((
                Value::from(id),
                Value::from(&*caller.authid),
                Value::from(&*caller.authrole),
            ))
        } else {
            None
        };
        // A call another node passed on goes to a registration with a callee here (the
        // best such match: this node's callees as if it were alone).
        let sessions = &self.sessions;
        let has_local_callee = |registration: &Registration| {
            registration
                .callees
                .iter()
                .any(|callee| sessions.get(callee).is_some_and(|s| !s.is_node()))
        };
        let matched = if from_node {
            self.dealer.best_match_where(&procedure, has_local_callee)
        } else {
            self.dealer.best_match(&procedure)
        };
        let Some((registration, policy)) =
            matched.map(|registration| (registration.id, registration.policy))
        else {
            if from_node {
                // The other node's route is stale (the callee here left a moment ago): it
                // gets its call back to route again (`nodes::NOT_HERE`).
                let message = nodes::not_here(request, raw_options, procedure, payload);
                self.send(id, message, ctx.out);
                return Ok(());
            }
            refuse(self, Refusal::NoSuchProcedure { procedure }, ctx.out);
            return Ok(());
        };
        let max = ctx.config.max_pending_calls_per_callee;
        let callee = match self.pick_callee(ctx, registration, max, from_node) {
            Ok(callee) => callee,
            Err(refusal) => {
                refuse(self, refusal, ctx.out);
                return Ok(());
            }
        };
        let Some(callee_session) = self.sessions.get_mut(&callee) else {
            return Ok(());
        };
        let invocation = callee_session.invocation_ids.next_id();
        callee_session.calls_as_callee += 1;
        if let Some(caller) = self.sessions.get_mut(&id) {
            caller.calls_as_caller += 1;
        }
        let timeout = match options.timeout_ms {
            0 => ctx.config.call_timeout,
            ms => Some(Duration::from_millis(ms)),
        };
        let deadline = timeout.and_then(|timeout| ctx.now.checked_add(timeout));
        self.dealer.insert_call(Call {
            caller: id,
            caller_request: request,
            callee,
            invocation,
            deadline,
            kill_requested: false,
        });
        let mut details = Dict::new();
        // WAMP v2 advanced, "Pattern-based Registration": "the Dealer MUST ... provide the
        // actual procedure ... in INVOCATION.Details.procedure".
        if policy != Match::Exact {
            details.insert("procedure", Value::from(procedure.as_str()));
        }
        // "Caller Identification": on request, and for trusted callers as in Crossbar.
        if let Some((caller, caller_authid, caller_authrole)) = disclosed_caller {
            details.insert("caller", caller);
            details.insert("caller_authid", caller_authid);
            details.insert("caller_authrole", caller_authrole);
        }
        if options.receive_progress {
            details.insert("receive_progress", Value::Bool(true));
        }
        if options.timeout_ms > 0 {
            details.insert("timeout", Value::from(options.timeout_ms));
        }
        self.send(
            callee,
            Message::Invocation {
                request: invocation,
                registration,
                details,
                payload,
            },
            ctx.out,
        );
        Ok(())
    }

    pub(super) fn on_cancel(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        request: u64,
        options: &Dict,
    ) -> Result<(), Violation> {
        let mode = CancelMode::parse(options)?;
        let Some(&key) = self.dealer.by_request.get(&(id, request)) else {
            // Crossbar `processCancel` ignores a CANCEL for a call not in flight.
            return Ok(());
        };
        let Some(call) = self.dealer.calls.get_mut(&key) else {
            return Ok(());
        };
        if call.kill_requested {
            // Crossbar: "for those that repeatedly push elevator buttons".
            return Ok(());
        }
        let (callee, invocation) = (call.callee, call.invocation);
        let mode = if self.callee_cancels(callee) {
            mode
        } else {
            CancelMode::Skip
        };
        match mode {
            CancelMode::Skip => {
                self.end_call(key);
                self.send(
                    id,
                    call_error(request, CANCELED_ERROR, "call canceled"),
                    ctx.out,
                );
            }
            CancelMode::KillNoWait => {
                self.end_call(key);
                self.send(callee, interrupt(invocation, mode), ctx.out);
                self.send(
                    id,
                    call_error(request, CANCELED_ERROR, "call canceled"),
                    ctx.out,
                );
            }
            CancelMode::Kill => {
                if let Some(call) = self.dealer.calls.get_mut(&key) {
                    call.kill_requested = true;
                }
                self.send(callee, interrupt(invocation, mode), ctx.out);
            }
        }
        Ok(())
    }

    pub(super) fn on_yield(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        request: u64,
        options: &Dict,
        payload: Payload,
    ) -> Result<(), Violation> {
        let progress = yield_progress(options)?;
        let Some(&key) = self.dealer.by_invocation.get(&(id, request)) else {
            log::debug!(realm = self.name, session = id, request = request; "YIELD for no pending invocation dropped");
            return Ok(());
        };
        let Some(call) = self.dealer.calls.get(&key) else {
            return Ok(());
        };
        let (caller, caller_request) = (call.caller, call.caller_request);
        let mut details = Dict::new();
        if progress {
            // WAMP v2 advanced, "Progressive Call Results": the Dealer "will immediately send a
            // RESULT message to the original Caller with RESULT.Details.progress|bool := true";
            // Crossbar forwards it whether or not the caller asked for progress.
            details.insert("progress", Value::Bool(true));
        } else {
            self.end_call(key);
        }
        let result = Message::Result {
            request: caller_request,
            details,
            payload,
        };
        self.reply_to_caller(ctx, caller, result);
        Ok(())
    }

    pub(super) fn on_invocation_error(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        request: u64,
        details: Dict,
        error: String,
        payload: Payload,
    ) {
        let Some(&key) = self.dealer.by_invocation.get(&(id, request)) else {
            log::debug!(realm = self.name, session = id, request = request; "ERROR for no pending invocation dropped");
            return;
        };
        let Some(call) = self.end_call(key) else {
            return;
        };
        if error == nodes::NOT_HERE && self.sessions.get(&id).is_some_and(|s| s.is_node()) {
            self.call_again(ctx, id, &call, details, payload);
            return;
        }
        let error = Message::Error {
            request_type: MessageType::Call,
            request: call.caller_request,
            details: Dict::new(),
            error,
            payload,
        };
        self.reply_to_caller(ctx, call.caller, error);
    }

    /// RESULT or ERROR for `caller`: a session, or the router's own call (then the answer
    /// settles what waited on it: an authorizer's, or an authenticator's for the router).
    fn reply_to_caller(&mut self, ctx: &mut Ctx<'_>, caller: u64, message: Message) {
        if caller != ROUTER_CALLER {
            self.send(caller, message, ctx.out);
            return;
        }
        if let Some((ticket, outcome)) = Outcome::of_reply(message) {
            self.answered(ctx, ticket, outcome);
        }
    }

    /// The router ends `call` without the callee's answer: ERROR `error` for a session, a
    /// failure for the router's own call (the callee never answered: not the application's
    /// error to pass on).
    pub(super) fn fail_caller(
        &mut self,
        ctx: &mut Ctx<'_>,
        call: &Call,
        error: &str,
        text: &'static str,
    ) {
        if call.caller == ROUTER_CALLER {
            self.answered(ctx, call.caller_request, Outcome::Failed(text));
        } else {
            self.send(
                call.caller,
                call_error(call.caller_request, error, text),
                ctx.out,
            );
        }
    }

    /// The router calls `procedure` with `payload`, as caller `ROUTER_CALLER` with request id
    /// `ticket`; the answer comes back through `answered` within `dynamic_auth_timeout`. An
    /// error when no callee can take it now.
    pub(super) fn call_for_router(
        &mut self,
        ctx: &mut Ctx<'_>,
        ticket: u64,
        procedure: &str,
        payload: Payload,
    ) -> Result<(), &'static str> {
        let Some((registration, policy)) = self
            .dealer
            .best_match(procedure)
            .map(|registration| (registration.id, registration.policy))
        else {
            return Err("the procedure is not registered");
        };
        let max = ctx.config.max_pending_calls_per_callee;
        // An authenticator or authorizer registered on another node answers from there.
        let Ok(callee) = self.pick_callee(ctx, registration, max, false) else {
            return Err("every callee of the procedure is busy");
        };
        let Some(callee_session) = self.sessions.get_mut(&callee) else {
            return Err("the procedure is not registered");
        };
        let invocation = callee_session.invocation_ids.next_id();
        callee_session.calls_as_callee += 1;
        self.dealer.insert_call(Call {
            caller: ROUTER_CALLER,
            caller_request: ticket,
            callee,
            invocation,
            deadline: ctx.now.checked_add(ctx.config.dynamic_auth_timeout),
            kill_requested: false,
        });
        let mut details = Dict::new();
        if policy != Match::Exact {
            details.insert("procedure", Value::from(procedure));
        }
        let invocation = Message::Invocation {
            request: invocation,
            registration,
            details,
            payload,
        };
        self.send(callee, invocation, ctx.out);
        Ok(())
    }

    /// Session `id` is leaving: its calls as caller are interrupted, its invocations as
    /// callee fail (WAMP v2, "Caller Leaving During RPC Invocation", "Callee Leaving During
    /// an RPC Invocation").
    pub(super) fn dealer_session_gone(&mut self, ctx: &mut Ctx<'_>, id: u64) {
        for key in Dealer::calls_of(&self.dealer.by_request, id) {
            let Some(call) = self.end_call(key) else {
                continue;
            };
            if call.callee != id && self.callee_cancels(call.callee) {
                self.send(
                    call.callee,
                    interrupt(call.invocation, CancelMode::KillNoWait),
                    ctx.out,
                );
            }
        }
        for key in Dealer::calls_of(&self.dealer.by_invocation, id) {
            let Some(call) = self.end_call(key) else {
                continue;
            };
            if call.caller != id {
                let text = "callee disconnected from in-flight request";
                self.fail_caller(ctx, &call, CANCELED_ERROR, text);
            }
        }
    }

    /// Calls past their deadline: "The message flow for call timeouts is identical to Call
    /// Canceling, except that there is no CANCEL message that originates from the Caller. The
    /// cancellation mode is implicitly killnowait if the Callee supports call cancellation,
    /// otherwise the cancellation mode is skip." (WAMP v2 advanced, "Call Timeouts").
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(&(deadline, key)) = self.dealer.deadlines.first() {
            if deadline > ctx.now {
                break;
            }
            let Some(call) = self.end_call(key) else {
                self.dealer.deadlines.remove(&(deadline, key));
                continue;
            };
            self.fail_caller(ctx, &call, TIMEOUT_ERROR, "call timed out");
            if self.callee_cancels(call.callee) {
                self.send(
                    call.callee,
                    interrupt(call.invocation, CancelMode::KillNoWait),
                    ctx.out,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::router::testing::{Harness, Out, config, invocation, registered, to};
    use crate::router::{Peer, RouterConfig};
    use crate::server::slab::Key;
    use crate::wamp::{Message, Serializer};

    /// A caller and a callee (call canceling announced) with `procedure` registered.
    fn pair(h: &mut Harness, procedure: &str) -> (Key, Key, u64) {
        let (callee, _) = h.join("callee");
        let (caller, _) = h.join("caller");
        let registration = registered(&h.send(callee, &format!(r#"[64,1,{{}},"{procedure}"]"#)));
        (caller, callee, registration)
    }

    #[test]
    fn call_is_invoked_and_the_result_returned_untouched() {
        let mut h = Harness::new(config());
        let (caller, callee, registration) = pair(&mut h, "com.add");
        let out = h.send(caller, r#"[48,7,{},"com.add",[1,2],{"x":{"y":[null]}}]"#);
        let (request, text) = invocation(&out, callee);
        assert_eq!(
            text,
            format!(r#"[68,{request},{registration},{{}},[1,2],{{"x":{{"y":[null]}}}}]"#)
        );
        assert_eq!(h.router.figures().pending_calls, 1);
        let out = h.send(callee, &format!(r#"[70,{request},{{}},[3],{{"k":"v"}}]"#));
        assert_eq!(to(&out, caller), vec![r#"[50,7,{},[3],{"k":"v"}]"#]);
        assert_eq!(h.router.figures().pending_calls, 0);
    }

    #[test]
    fn callee_error_reaches_the_caller_untouched() {
        let mut h = Harness::new(config());
        let (caller, callee, _) = pair(&mut h, "com.add");
        let out = h.send(caller, r#"[48,7,{},"com.add"]"#);
        let (request, _) = invocation(&out, callee);
        let out = h.send(
            callee,
            &format!(r#"[8,68,{request},{{"x":1}},"com.error.bad",["why"],{{"a":1}}]"#),
        );
        assert_eq!(
            to(&out, caller),
            vec![r#"[8,48,7,{},"com.error.bad",["why"],{"a":1}]"#]
        );
        assert_eq!(h.router.figures().pending_calls, 0);
    }

    #[test]
    fn registration_errors() {
        let mut h = Harness::new(config());
        let (a, _) = h.join("a");
        let (b, _) = h.join("b");
        let reg = registered(&h.send(a, r#"[64,1,{},"p"]"#));
        assert_eq!(
            to(&h.send(b, r#"[64,2,{},"p"]"#), b),
            vec![
                r#"[8,64,2,{},"wamp.error.procedure_already_exists",["register for already registered procedure 'p'"]]"#
            ]
        );
        assert_eq!(
            to(&h.send(a, r#"[64,3,{},"p"]"#), a)[0].as_str(),
            r#"[8,64,3,{},"wamp.error.procedure_already_exists",["register for already registered procedure 'p'"]]"#
        );
        let shared = registered(&h.send(a, r#"[64,4,{"invoke":"roundrobin"},"q"]"#));
        assert_eq!(
            registered(&h.send(b, r#"[64,5,{"invoke":"roundrobin"},"q"]"#)),
            shared
        );
        assert_eq!(
            to(&h.send(b, r#"[64,6,{"invoke":"random"},"q"]"#), b),
            vec![
                r#"[8,64,6,{},"wamp.error.procedure_exists_with_different_invocation_policy",["register for already registered procedure 'q' with conflicting invocation policy (has roundrobin and random was requested)"]]"#
            ]
        );
        assert_eq!(
            to(&h.send(b, &format!("[66,7,{reg}]")), b),
            vec![format!(
                r#"[8,66,7,{{}},"wamp.error.no_such_registration",["no registration {reg} for this session"]]"#
            )]
        );
        assert_eq!(to(&h.send(a, &format!("[66,8,{reg}]")), a), vec!["[67,8]"]);
        assert_eq!(
            to(&h.send(b, r#"[48,9,{},"p"]"#), b),
            vec![
                r#"[8,48,9,{},"wamp.error.no_such_procedure",["no callee registered for procedure <p>"]]"#
            ]
        );
        assert_eq!(
            to(&h.send(b, r#"[64,10,{},"wamp.p"]"#), b),
            vec![r#"[8,64,10,{},"wamp.error.invalid_uri",["restricted URI 'wamp.p'"]]"#]
        );
        assert_eq!(
            to(&h.send(b, r#"[64,11,{},"a b"]"#), b),
            vec![
                r#"[8,64,11,{},"wamp.error.invalid_uri",["invalid URI 'a b': has whitespace or '#' at byte 1"]]"#
            ]
        );
        assert_eq!(
            to(&h.send(b, r#"[48,12,{},"a..b"]"#), b),
            vec![
                r#"[8,48,12,{},"wamp.error.invalid_uri",["invalid URI 'a..b': has an empty component at byte 2"]]"#
            ]
        );
        let control = h.key();
        assert!(matches!(
            h.backend(control, r#"[64,13,{},"wamp.backend.p"]"#)
                .as_slice(),
            [Out::Control(_, Message::Registered { .. })]
        ));
        assert_eq!(
            to(
                &h.backend(control, r#"[64,14,{},"wamp.session.count"]"#),
                control
            ),
            vec![
                r#"[8,64,14,{},"wamp.error.procedure_already_exists",["register for already registered procedure 'wamp.session.count'"]]"#
            ]
        );
    }

    #[test]
    fn exact_beats_prefix_beats_wildcard_and_patterns_name_the_procedure() {
        let mut h = Harness::new(config());
        let (w, _) = h.join("w");
        let (p, _) = h.join("p");
        let (e, _) = h.join("e");
        let (caller, _) = h.join("caller");
        h.send(w, r#"[64,1,{"match":"wildcard"},"com..add"]"#);
        h.send(p, r#"[64,1,{"match":"prefix"},"com.math"]"#);
        let out = h.send(caller, r#"[48,1,{},"com.math.add"]"#);
        assert!(
            invocation(&out, p)
                .1
                .contains(r#"{"procedure":"com.math.add"}"#)
        );
        let out = h.send(caller, r#"[48,2,{},"com.other.add"]"#);
        assert!(
            invocation(&out, w)
                .1
                .contains(r#"{"procedure":"com.other.add"}"#)
        );
        h.send(e, r#"[64,1,{},"com.math.add"]"#);
        let out = h.send(caller, r#"[48,3,{},"com.math.add"]"#);
        assert!(invocation(&out, e).1.ends_with(",{}]"));
    }

    #[test]
    fn caller_is_disclosed_on_request_and_options_are_passed() {
        let mut h = Harness::new(config());
        let (callee, _) = h.join("callee");
        let (caller, caller_id) = h.join("caller");
        h.send(callee, r#"[64,1,{},"p"]"#);
        let out = h.send(
            caller,
            r#"[48,1,{"disclose_me":true,"receive_progress":true,"timeout":5000},"p"]"#,
        );
        assert!(invocation(&out, callee).1.contains(&format!(
            r#"{{"caller":{caller_id},"caller_authid":"caller","caller_authrole":"user","receive_progress":true,"timeout":5000}}"#
        )));
        // The backend (trusted) is always disclosed, as Crossbar discloses trusted sessions.
        let control = h.key();
        let out = h.backend(control, r#"[48,1,{},"p"]"#);
        assert!(
            invocation(&out, callee)
                .1
                .contains(r#""caller_authid":"backend","caller_authrole":"trusted""#)
        );
    }

    #[test]
    fn progressive_results_then_the_final_one() {
        let mut h = Harness::new(config());
        let (caller, callee, _) = pair(&mut h, "p");
        let out = h.send(caller, r#"[48,3,{"receive_progress":true},"p"]"#);
        let (request, _) = invocation(&out, callee);
        let out = h.send(
            callee,
            &format!(r#"[70,{request},{{"progress":true}},["part"]]"#),
        );
        assert_eq!(
            to(&out, caller),
            vec![r#"[50,3,{"progress":true},["part"]]"#]
        );
        let out = h.send(callee, &format!(r#"[70,{request},{{}},["done"]]"#));
        assert_eq!(to(&out, caller), vec![r#"[50,3,{},["done"]]"#]);
        assert!(
            h.send(callee, &format!(r#"[70,{request},{{}},["late"]]"#))
                .is_empty()
        );
    }

    #[test]
    fn timeout_fails_the_call_and_interrupts_the_callee() {
        let mut h = Harness::new(config());
        let (caller, callee, _) = pair(&mut h, "p");
        let out = h.send(caller, r#"[48,1,{"timeout":1500},"p"]"#);
        let (request, _) = invocation(&out, callee);
        assert_eq!(
            h.router.next_deadline(),
            Some(h.now + Duration::from_millis(1500))
        );
        assert!(h.advance(Duration::from_millis(1499)).is_empty());
        let out = h.advance(Duration::from_millis(1));
        assert_eq!(
            to(&out, caller),
            vec![r#"[8,48,1,{},"wamp.error.timeout",["call timed out"]]"#]
        );
        assert_eq!(
            to(&out, callee),
            vec![format!(r#"[69,{request},{{"mode":"killnowait"}}]"#)]
        );
        assert_eq!(h.router.next_deadline(), None);
        assert!(
            h.send(callee, &format!(r#"[70,{request},{{}}]"#))
                .is_empty()
        );
    }

    #[test]
    fn configured_call_timeout_applies_without_an_option() {
        let mut h = Harness::new(RouterConfig {
            call_timeout: Some(Duration::from_secs(2)),
            ..config()
        });
        let (caller, _, _) = pair(&mut h, "p");
        h.send(caller, r#"[48,1,{},"p"]"#);
        assert_eq!(
            h.router.next_deadline(),
            Some(h.now + Duration::from_secs(2))
        );
        let out = h.advance(Duration::from_secs(2));
        assert_eq!(to(&out, caller).len(), 1);
        assert_eq!(h.router.figures().pending_calls, 0);
    }

    #[test]
    fn cancel_modes() {
        let mut h = Harness::new(config());
        let (caller, callee, _) = pair(&mut h, "p");
        // skip: ERROR at once, nothing to the callee, the late result dropped.
        let (request, _) = invocation(&h.send(caller, r#"[48,1,{},"p"]"#), callee);
        let out = h.send(caller, r#"[49,1,{"mode":"skip"}]"#);
        assert_eq!(out.len(), 1);
        assert_eq!(
            to(&out, caller),
            vec![r#"[8,48,1,{},"wamp.error.canceled",["call canceled"]]"#]
        );
        assert!(
            h.send(callee, &format!(r#"[70,{request},{{}}]"#))
                .is_empty()
        );
        // killnowait: INTERRUPT and ERROR at once.
        let (request, _) = invocation(&h.send(caller, r#"[48,2,{},"p"]"#), callee);
        let out = h.send(caller, r#"[49,2,{"mode":"killnowait"}]"#);
        assert_eq!(
            to(&out, callee),
            vec![format!(r#"[69,{request},{{"mode":"killnowait"}}]"#)]
        );
        assert_eq!(
            to(&out, caller),
            vec![r#"[8,48,2,{},"wamp.error.canceled",["call canceled"]]"#]
        );
        assert!(
            h.send(
                callee,
                &format!(r#"[8,68,{request},{{}},"wamp.error.canceled"]"#)
            )
            .is_empty()
        );
        // kill: INTERRUPT, then the callee's answer is passed on.
        let (request, _) = invocation(&h.send(caller, r#"[48,3,{},"p"]"#), callee);
        let out = h.send(caller, r#"[49,3,{"mode":"kill"}]"#);
        assert_eq!(out.len(), 1);
        assert_eq!(
            to(&out, callee),
            vec![format!(r#"[69,{request},{{"mode":"kill"}}]"#)]
        );
        assert!(h.send(caller, r#"[49,3,{"mode":"kill"}]"#).is_empty());
        let out = h.send(
            callee,
            &format!(r#"[8,68,{request},{{}},"wamp.error.canceled",["stopped"]]"#),
        );
        assert_eq!(
            to(&out, caller),
            vec![r#"[8,48,3,{},"wamp.error.canceled",["stopped"]]"#]
        );
        // A CANCEL for no call in flight is ignored.
        assert!(h.send(caller, r#"[49,99,{}]"#).is_empty());
        assert_eq!(h.router.figures().pending_calls, 0);
    }

    #[test]
    fn callee_without_call_canceling_is_never_interrupted() {
        let mut h = Harness::new(config());
        let callee = h.connect(Serializer::Json, "old");
        h.send(callee, r#"[1,"realm1",{"roles":{"callee":{}}}]"#);
        h.send(callee, r#"[64,1,{},"p"]"#);
        let (caller, _) = h.join("caller");
        h.send(caller, r#"[48,1,{"timeout":10},"p"]"#);
        let out = h.send(caller, r#"[49,1,{"mode":"kill"}]"#);
        assert_eq!(
            to(&out, caller),
            vec![r#"[8,48,1,{},"wamp.error.canceled",["call canceled"]]"#]
        );
        assert!(to(&out, callee).is_empty());
        h.send(caller, r#"[48,2,{"timeout":10},"p"]"#);
        let out = h.advance(Duration::from_millis(10));
        assert_eq!(out.len(), 1, "{out:?}");
    }

    #[test]
    fn callee_leaving_fails_its_calls() {
        let mut h = Harness::new(config());
        let (caller, callee, _) = pair(&mut h, "p");
        h.send(caller, r#"[48,1,{},"p"]"#);
        let out = h.gone(Peer::Client(callee));
        assert_eq!(
            to(&out, caller),
            vec![
                r#"[8,48,1,{},"wamp.error.canceled",["callee disconnected from in-flight request"]]"#
            ]
        );
        assert_eq!(h.router.figures().pending_calls, 0);
        assert_eq!(h.router.figures().registrations, 0);
    }

    #[test]
    fn caller_leaving_interrupts_and_the_late_answer_does_no_harm() {
        let mut h = Harness::new(config());
        let (caller, callee, _) = pair(&mut h, "p");
        let (request, _) = invocation(&h.send(caller, r#"[48,1,{"timeout":100},"p"]"#), callee);
        let out = h.gone(Peer::Client(caller));
        assert_eq!(
            to(&out, callee),
            vec![format!(r#"[69,{request},{{"mode":"killnowait"}}]"#)]
        );
        assert_eq!(h.router.next_deadline(), None);
        // Crossbar #2133/#2153: the late YIELD or ERROR must not end the callee's session.
        assert!(
            h.send(callee, &format!(r#"[70,{request},{{}}]"#))
                .is_empty()
        );
        assert!(
            h.send(callee, &format!(r#"[8,68,{request},{{}},"x.y"]"#))
                .is_empty()
        );
        assert!(h.send(callee, r#"[70,12345,{}]"#).is_empty());
        let (other, _) = h.join("other");
        let out = h.send(other, r#"[48,1,{},"p"]"#);
        invocation(&out, callee);
    }

    #[test]
    fn pending_call_limits() {
        let mut h = Harness::new(RouterConfig {
            max_pending_calls_per_session: 2,
            max_pending_calls_per_callee: 3,
            ..config()
        });
        let (callee, _) = h.join("callee");
        h.send(callee, r#"[64,1,{},"p"]"#);
        let (a, _) = h.join("a");
        let (b, _) = h.join("b");
        h.send(a, r#"[48,1,{},"p"]"#);
        h.send(a, r#"[48,2,{},"p"]"#);
        assert_eq!(
            to(&h.send(a, r#"[48,3,{},"p"]"#), a),
            vec![
                r#"[8,48,3,{},"wamp.error.canceled",["the session has 2 calls pending, the most allowed"]]"#
            ]
        );
        // Meta procedures answer at once and are not limited.
        assert_eq!(
            to(&h.send(a, r#"[48,4,{},"wamp.session.count"]"#), a),
            vec!["[50,4,{},[3]]"]
        );
        h.send(b, r#"[48,1,{},"p"]"#);
        assert_eq!(
            to(&h.send(b, r#"[48,2,{},"p"]"#), b),
            vec![
                r#"[8,48,2,{},"wamp.error.no_available_callee",["every callee of <p> has 3 invocations pending, the most allowed"]]"#
            ]
        );
        for request in 10..500 {
            assert_eq!(h.send(b, &format!(r#"[48,{request},{{}},"p"]"#)).len(), 1);
        }
        assert_eq!(h.router.figures().pending_calls, 3);
    }

    #[test]
    fn registration_limit_is_an_error() {
        let mut h = Harness::new(RouterConfig {
            max_registrations_per_session: 1,
            ..config()
        });
        let (a, _) = h.join("a");
        h.send(a, r#"[64,1,{},"p"]"#);
        assert_eq!(
            to(&h.send(a, r#"[64,2,{},"q"]"#), a),
            vec![
                r#"[8,64,2,{},"wamp.error.not_authorized",["the session has 1 registrations, the most allowed"]]"#
            ]
        );
    }

    #[test]
    fn invocation_policies() {
        let mut h = Harness::new(RouterConfig {
            max_pending_calls_per_callee: 1000,
            max_pending_calls_per_session: 1000,
            ..config()
        });
        let (caller, _) = h.join("caller");
        let callees = (0..3)
            .map(|i| h.join(&format!("c{i}")).0)
            .collect::<Vec<_>>();
        for (policy, procedure) in [
            ("roundrobin", "rr"),
            ("first", "f"),
            ("last", "l"),
            ("random", "r"),
        ] {
            for callee in &callees {
                h.send(
                    *callee,
                    &format!(r#"[64,1,{{"invoke":"{policy}"}},"{procedure}"]"#),
                );
            }
        }
        let mut request = 0;
        let mut hits = |h: &mut Harness, procedure: &str, n: usize| {
            let mut counts = vec![0; 3];
            for _ in 0..n {
                request += 1;
                let out = h.send(caller, &format!(r#"[48,{request},{{}},"{procedure}"]"#));
                for (i, callee) in callees.iter().enumerate() {
                    if !to(&out, *callee).is_empty() {
                        counts[i] += 1;
                    }
                }
            }
            counts
        };
        assert_eq!(hits(&mut h, "rr", 6), vec![2, 2, 2]);
        assert_eq!(hits(&mut h, "f", 3), vec![3, 0, 0]);
        assert_eq!(hits(&mut h, "l", 3), vec![0, 0, 3]);
        let random = hits(&mut h, "r", 300);
        assert!(random.iter().all(|&n| n > 60), "{random:?}");
    }

    #[test]
    fn roundrobin_skips_busy_callees() {
        let mut h = Harness::new(RouterConfig {
            max_pending_calls_per_callee: 1,
            ..config()
        });
        let (caller, _) = h.join("caller");
        let (a, _) = h.join("a");
        let (b, _) = h.join("b");
        h.send(a, r#"[64,1,{"invoke":"roundrobin"},"p"]"#);
        h.send(b, r#"[64,1,{"invoke":"roundrobin"},"p"]"#);
        invocation(&h.send(caller, r#"[48,1,{},"p"]"#), a);
        invocation(&h.send(caller, r#"[48,2,{},"p"]"#), b);
        let out = h.send(caller, r#"[48,3,{},"p"]"#);
        assert!(to(&out, caller)[0].contains("wamp.error.no_available_callee"));
    }

    #[test]
    fn backend_as_callee_and_as_caller() {
        let mut h = Harness::new(config());
        let control = h.key();
        let registration = registered(&h.backend(control, r#"[64,1,{},"backend.p"]"#));
        let (caller, caller_id) = h.join("alice");
        let out = h.send(caller, r#"[48,5,{},"backend.p",["x"]]"#);
        let (request, text) = invocation(&out, control);
        assert_eq!(text, format!(r#"[68,{request},{registration},{{}},["x"]]"#));
        let out = h.backend(control, &format!(r#"[70,{request},{{}},["y"]]"#));
        assert_eq!(to(&out, caller), vec![r#"[50,5,{},["y"]]"#]);
        // The backend calls a browser's procedure; RESULT carries its own request id.
        h.send(caller, r#"[64,6,{},"browser.p"]"#);
        let out = h.backend(control, r#"[48,4242,{},"browser.p",[1]]"#);
        let (request, text) = invocation(&out, caller);
        let backend_id = text
            .split("\"caller\":")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_owned();
        assert_ne!(backend_id, caller_id.to_string());
        let out = h.send(caller, &format!(r#"[70,{request},{{}},[2]]"#));
        assert_eq!(to(&out, control), vec![r#"[50,4242,{},[2]]"#]);
    }

    #[test]
    fn reusing_an_in_flight_request_id_is_a_protocol_violation() {
        let mut h = Harness::new(config());
        let (caller, _, _) = pair(&mut h, "p");
        h.send(caller, r#"[48,1,{},"p"]"#);
        let out = h.send(caller, r#"[48,1,{},"p"]"#);
        assert!(
            matches!(out.first(), Some(Out::To(_, Message::Abort { .. }))),
            "{out:?}"
        );
    }

    #[test]
    fn self_call_and_leave() {
        let mut h = Harness::new(config());
        let (a, _) = h.join("a");
        h.send(a, r#"[64,1,{},"p"]"#);
        let out = h.send(a, r#"[48,2,{},"p"]"#);
        invocation(&out, a);
        let out = h.gone(Peer::Client(a));
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(h.router.figures().pending_calls, 0);
    }
}
