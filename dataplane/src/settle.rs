//! The end of a request: when its response body finishes (or the caller goes away),
//! the reservation is settled against real usage, the caller's ledger and the metrics
//! are updated, and the audit record is written, all off the response path.

use crate::audit::AuditRecord;
use crate::context::{CascadeOutcome, RequestContext};
use crate::limits::{
    slice_name, Check, Counters, Demand, Ledger, LedgerEntry, ModelUsage, Reservation, Windows,
    ALL_CALLERS,
};
use crate::metrics::{
    AutoRouteLabels, CallLabels, CascadeLabels, StatusLabels, UpstreamErrorLabels,
};
use crate::pricing::cost_micros;
use crate::state::Services;
use crate::translate::TokenUsage;
use ai_gateway_snapshot::BudgetAlerts;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

pub struct Settlement {
    pub services: Arc<Services>,
    pub ctx: RequestContext,
    pub status: u16,
    pub error: Option<&'static str>,
    first_byte: Option<Instant>,
}

impl Settlement {
    pub fn new(
        services: Arc<Services>,
        mut ctx: RequestContext,
        status: u16,
        error: Option<&'static str>,
    ) -> Self {
        ctx.settling();
        Self {
            services,
            ctx,
            status,
            error,
            first_byte: None,
        }
    }

    /// Settles and audits a request whose caller went away before it was answered.
    pub fn abandon(self) {
        self.finish(true);
    }

    /// Settles, meters and audits the call. With the in-memory store and room in the
    /// audit buffer all of it happens here, at once; what has to wait (Redis, an audit
    /// sink that has fallen behind) goes on in a task of its own.
    fn finish(mut self, abandoned: bool) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Settled here, so the context's drop has nothing left to release.
        let reservation = self.ctx.take_reservation();
        let budget_watch = self.ctx.take_budget_watch();
        let ctx = &self.ctx;
        let latency = ctx.started().elapsed();
        let ttft = self.first_byte.map(|t| t.duration_since(ctx.started()));
        let metered = ctx.usage().get();
        let bodies = ctx.usage().bodies();
        let mut usage = metered.usage;
        if (200..300).contains(&self.status) && (abandoned || usage.output == 0) {
            // A stream cut before its final usage produced at least a token per delta.
            usage.output = usage.output.max(metered.deltas);
        }
        if (200..300).contains(&self.status)
            && usage.prompt_total() == 0
            && ctx.cache_hit() != Some(true)
        {
            // Providers that report usage only at the end (OpenAI, Bedrock Converse)
            // never did: the prompt was still sent, and is charged as estimated.
            usage.input = ctx.estimated_input_tokens();
        }
        let cost = ctx.price().map(|p| cost_micros(&usage, &p)).unwrap_or(0);
        // A cascade that escalated ran the cheaper tier too: the caller pays for both.
        let judged = ctx.cascade().filter(|c| c.escalated).map(|c| &c.judged);
        let (total, total_cost) = match judged {
            Some(a) => (usage.plus(&a.usage), cost + a.cost_micros),
            None => (usage, cost),
        };
        let services = &self.services;
        let identity = ctx.identity();
        let user = identity.map_or("anonymous", |i| i.user.as_str());

        let actual = Demand {
            tokens: total.prompt_total() + total.output,
            cost_micros: total_cost,
        };
        let line = |usage: &TokenUsage, cost_micros: u64, tokens_saved: u64| ModelUsage {
            requests: 1,
            tokens_in: usage.prompt_total(),
            tokens_out: usage.output,
            cache_read_tokens: usage.cache_read,
            cache_write_tokens: usage.cache_write,
            cost_micros,
            tokens_saved,
        };
        let day = Windows::at(std::time::SystemTime::now()).day;
        let entry = |ledger, name, usage| LedgerEntry {
            ledger,
            user,
            day,
            name,
            usage,
        };
        let saved = ctx.tokens_saved();
        // Who spent it, for the admin API's cost reports: one slice per attempt.
        let slice = |provider: &str, model: &str| {
            slice_name([
                user,
                identity.and_then(|i| i.team.as_deref()).unwrap_or_default(),
                identity
                    .and_then(|i| i.workspace.as_deref())
                    .unwrap_or_default(),
                identity
                    .and_then(|i| i.key_id.as_deref())
                    .unwrap_or_default(),
                provider,
                bounded_name(model),
                ctx.session_id().unwrap_or_default(),
            ])
        };
        let succeeded = (200..300).contains(&self.status);
        let this_slice = succeeded.then(|| {
            slice(
                ctx.provider().unwrap_or_default(),
                ctx.model().unwrap_or_default(),
            )
        });
        let judged_slice = judged.map(|a| slice(&a.provider, &a.model));
        let mut ledger = Vec::with_capacity(5);
        let everyone = |name, usage| LedgerEntry {
            ledger: Ledger::Calls,
            user: ALL_CALLERS,
            day,
            name,
            usage,
        };
        if succeeded {
            let this = line(&usage, cost, saved);
            ledger.extend(ctx.model().map(|m| entry(Ledger::Models, m, this)));
            let both = line(&total, total_cost, saved);
            ledger.extend(ctx.session_id().map(|s| entry(Ledger::Sessions, s, both)));
            ledger.extend(this_slice.as_deref().map(|name| everyone(name, this)));
        }
        if let Some(a) = judged {
            let cheaper = line(&a.usage, a.cost_micros, 0);
            ledger.push(entry(Ledger::Models, &a.model, cheaper));
            ledger.extend(judged_slice.as_deref().map(|name| everyone(name, cheaper)));
        }
        let watched = budget_watch.filter(|_| succeeded);
        if services
            .store
            .finish_at_once(reservation.as_ref(), actual, &ledger)
        {
            if let Some((checks, settings)) = watched {
                let windows = Windows::at(std::time::SystemTime::now());
                if let Some(counters) = services.store.local_counters(&checks, windows) {
                    crate::alerts::after_call(
                        services, &runtime, &checks, &counters, &settings, windows,
                    );
                }
            }
        } else {
            let services = services.clone();
            let request_id = ctx.request_id().to_string();
            let ledger: Vec<OwnedEntry> = ledger.iter().map(OwnedEntry::from).collect();
            runtime.spawn(async move {
                let remote = Remote {
                    reservation,
                    actual,
                    ledger,
                    watched,
                };
                settle_remotely(&services, &request_id, remote).await
            });
        }

        let m = &services.metrics;
        let provider = ctx.provider().unwrap_or_default();
        if ctx.provider().is_some() {
            // Caller-chosen names become label values: keep them short (the metrics
            // also cap how many distinct ones there are).
            let model = ctx.model().unwrap_or_default();
            let model = match model.char_indices().nth(100) {
                Some((cut, _)) => &model[..cut],
                None => model,
            };
            let series = m.call_series(&CallLabels {
                provider,
                model,
                endpoint: ctx.call_name(),
                status: self.status,
                user,
                team: identity.and_then(|i| i.team.as_deref()).unwrap_or_default(),
            });
            series.requests.inc();
            series.add_tokens(m, &usage);
            if cost > 0 {
                series.add_cost(m, cost as f64 / 1_000_000.0);
            }
            series.duration.observe(latency.as_secs_f64());
            if let Some(t) = ttft {
                series.ttft.observe(t.as_secs_f64());
            }
        } else {
            // Refused before routing: no caller-chosen name becomes a label.
            m.refused
                .get_or_create(&StatusLabels {
                    status: self.status,
                })
                .inc();
        }
        if let Some(tier) = ctx.auto_tier() {
            m.auto_routes.get_or_create(&AutoRouteLabels { tier }).inc();
        }
        if let Some(cascade) = ctx.cascade() {
            m.cascades
                .get_or_create(&CascadeLabels {
                    initial_tier: cascade.initial_tier,
                    final_tier: cascade.final_tier,
                })
                .inc();
        }
        if let Some(a) = judged {
            let series = m.call_series(&CallLabels {
                provider: &a.provider,
                model: &a.model,
                endpoint: ctx.call_name(),
                status: a.status,
                user,
                team: identity.and_then(|i| i.team.as_deref()).unwrap_or_default(),
            });
            series.requests.inc();
            series.add_tokens(m, &a.usage);
            if a.cost_micros > 0 {
                series.add_cost(m, a.cost_micros as f64 / 1_000_000.0);
            }
        }
        if saved > 0 {
            m.tokens_saved.inc_by(saved);
        }
        if let Some(cascade) = ctx.cascade() {
            let line = outcome_line(ctx, cascade, user);
            // Kept with the usage ledger (embedded store), and in a file when named.
            services.store.keep_outcome(&line);
            if let Some(path) = cascade.outcomes_file.as_deref() {
                services.outcomes.append(path, line, &m.audit_counters());
            }
        }
        if let Some(kind) = self.error.filter(|k| k.starts_with("upstream")) {
            m.upstream_errors
                .get_or_create(&UpstreamErrorLabels {
                    provider: provider.to_string(),
                    kind,
                })
                .inc();
        }

        if let Some(error) = self.error {
            services.trouble.record(
                ai_gateway_snapshot::replies::ErrorEntry {
                    timestamp: humantime::format_rfc3339_millis(std::time::SystemTime::now())
                        .to_string(),
                    request_id: ctx.request_id().to_string(),
                    user: bounded_name(user).to_string(),
                    model: ctx.model().map(|m| bounded_name(m).to_string()),
                    status: self.status,
                    error: error.to_string(),
                },
                day,
            );
        }

        if !services.audit.enabled() {
            return;
        }
        let record = AuditRecord {
            timestamp: std::time::SystemTime::now(),
            event: "ai_request",
            request_id: ctx.request_id(),
            client_request_id: ctx.client_request_id(),
            session_id: ctx.session_id(),
            agent_id: ctx.agent_id(),
            user,
            team: identity.and_then(|i| i.team.as_deref()),
            workspace: identity.and_then(|i| i.workspace.as_deref()),
            key_id: identity.and_then(|i| i.key_id.as_deref()),
            provider: ctx.provider(),
            model: ctx.model().map(bounded_name),
            upstream_model: ctx.upstream_model().map(bounded_name),
            endpoint: ctx.call_name(),
            route_reason: ctx.route_reason(),
            status: self.status,
            stream: ctx.stream(),
            request_tokens: total.prompt_total(),
            response_tokens: total.output,
            cache_read_tokens: total.cache_read,
            cache_write_tokens: total.cache_write,
            cost_usd: total_cost as f64 / 1_000_000.0,
            latency_ms: latency.as_millis() as u64,
            ttft_ms: ttft.map(|t| t.as_millis() as u64),
            cache_hit: ctx.cache_hit() == Some(true),
            tokens_saved: saved,
            cascade: ctx.cascade(),
            fallbacks: ctx.fallbacks(),
            error: self.error,
            abandoned,
            request_body: bodies
                .as_ref()
                .and_then(|b| b.request.as_deref())
                .map(String::from_utf8_lossy),
            response_body: bodies
                .as_ref()
                .and_then(|b| b.response.as_deref())
                .map(String::from_utf8_lossy),
        };
        if let Some(line) = services.audit.try_record(&record) {
            let services = services.clone();
            runtime.spawn(async move { services.audit.append_when_room(line).await });
        }
    }
}

/// One line of the outcomes file: who asked, when, and how the cascade went.
fn outcome_line(ctx: &RequestContext, cascade: &CascadeOutcome, user: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(384);
    line.extend_from_slice(b"{\"request_id\":");
    let _ = serde_json::to_writer(&mut line, ctx.request_id());
    line.extend_from_slice(b",\"user\":");
    let _ = serde_json::to_writer(&mut line, user);
    line.extend_from_slice(b",\"final_model\":");
    let _ = serde_json::to_writer(&mut line, &ctx.model().map(bounded_name));
    line.extend_from_slice(b",\"latency_ms\":");
    let _ = serde_json::to_writer(&mut line, &(ctx.started().elapsed().as_millis() as u64));
    line.extend_from_slice(b",\"outcome\":");
    crate::audit::write_cascade(cascade, &mut line);
    line.extend_from_slice(b"}\n");
    line
}

/// A caller-chosen name as a record carries it: at most 256 bytes, cut on a
/// character boundary, so one call cannot write a line of any length.
fn bounded_name(name: &str) -> &str {
    const MAX: usize = 256;
    if name.len() <= MAX {
        return name;
    }
    let mut cut = MAX;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    &name[..cut]
}

/// What a settlement against a remote store takes to its task.
struct Remote {
    reservation: Option<Reservation>,
    actual: Demand,
    ledger: Vec<OwnedEntry>,
    /// The daily limits whose alerts the settled counters are checked against.
    watched: Option<(Vec<Check>, Arc<BudgetAlerts>)>,
}

/// Settlement and the usage ledger against Redis, off the response path; the budget
/// alerts then check the counters the settlement returned.
async fn settle_remotely(services: &Arc<Services>, request_id: &str, remote: Remote) {
    let Remote {
        reservation,
        actual,
        ledger,
        watched,
    } = remote;
    let ledger: Vec<LedgerEntry<'_>> = ledger.iter().map(OwnedEntry::entry).collect();
    let settled = match services
        .store
        .finish(reservation.as_ref(), actual, &ledger)
        .await
    {
        Ok(settled) => settled,
        Err(e) => {
            return tracing::error!(request_id, error = %e, "could not settle a call's limits and usage");
        }
    };
    let (Some((checks, settings)), Some(reservation)) = (watched, reservation) else {
        return;
    };
    // The settlement answers for the reservation's keys; the watched checks are some of them.
    let counters: Vec<Counters> = checks
        .iter()
        .map(|check| {
            reservation
                .keys
                .iter()
                .position(|k| *k == check.key)
                .and_then(|i| settled.get(i).copied())
                .unwrap_or_default()
        })
        .collect();
    let runtime = tokio::runtime::Handle::current();
    let windows = reservation.windows;
    crate::alerts::after_call(services, &runtime, &checks, &counters, &settings, windows);
}

/// A ledger line kept for a settlement that finishes in a task of its own.
struct OwnedEntry {
    ledger: Ledger,
    user: String,
    day: u64,
    name: String,
    usage: ModelUsage,
}

impl From<&LedgerEntry<'_>> for OwnedEntry {
    fn from(e: &LedgerEntry<'_>) -> Self {
        Self {
            ledger: e.ledger,
            user: e.user.to_string(),
            day: e.day,
            name: e.name.to_string(),
            usage: e.usage,
        }
    }
}

impl OwnedEntry {
    fn entry(&self) -> LedgerEntry<'_> {
        LedgerEntry {
            ledger: self.ledger,
            user: &self.user,
            day: self.day,
            name: &self.name,
            usage: self.usage,
        }
    }
}

/// Runs its request's [`Settlement`] when the response body ends, or, when the caller
/// goes away first, when the body is dropped (the call counts as abandoned).
pub struct Metering {
    completion: Option<Settlement>,
}

impl Metering {
    pub fn new(completion: Settlement) -> Self {
        Self {
            completion: Some(completion),
        }
    }

    fn finish(&mut self, abandoned: bool) {
        if let Some(c) = self.completion.take() {
            c.finish(abandoned);
        }
    }
}

impl crate::body::BodyObserver for Metering {
    fn on_data(&mut self, _: &Bytes) {
        if let Some(c) = self.completion.as_mut() {
            c.first_byte.get_or_insert_with(Instant::now);
        }
    }

    fn on_end(&mut self, _failed: bool) {
        self.finish(false);
    }
}

impl Drop for Metering {
    fn drop(&mut self) {
        self.finish(true);
    }
}

/// A request dropped before its answer reached the caller is settled and audited as
/// status 499.
impl crate::context::Release for Services {
    fn release(self: Arc<Self>, ctx: RequestContext) {
        Settlement::new(
            self,
            ctx,
            crate::context::CLIENT_CLOSED,
            Some("client_closed"),
        )
        .abandon();
    }
}
