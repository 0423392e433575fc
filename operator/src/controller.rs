//! The in-cluster reconciler: one AIGateway at a time, it reads the namespace's routes,
//! policies and Secrets, compiles them, applies the objects the gateway owns, brings
//! every ready data-plane pod to the new snapshot and writes what happened into the
//! status of each object involved.

use crate::compile::{Compiled, Verdict};
use crate::conditions;
use crate::metrics::Metrics;
use crate::namespace::Namespace;
use crate::push::Pusher;
use crate::resources::{self, Names, MANAGER};
use ai_gateway_crds::{AIGateway, AIGatewayStatus, ObjectStatus, ProviderRoute, RateLimitPolicy};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the AIGateway has no namespace")]
    NoNamespace,
    #[error("encoding the snapshot: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{0}")]
    Compile(#[from] crate::namespace::NamespaceError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// What a reconcile needs besides the object.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Used for gateways that name no image of their own.
    pub dataplane_image: String,
    /// Data planes outside the cluster to keep in step with every gateway.
    pub push_to: Vec<String>,
    /// The data plane's admin port on each pod (tests point it elsewhere).
    pub admin_port: u16,
    /// Where the operator runs: only its pods there may reach the admin port.
    pub operator_namespace: Option<String>,
    http: reqwest::Client,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        dataplane_image: String,
        push_to: Vec<String>,
        instance: Option<String>,
    ) -> Result<Self, Error> {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance,
        };
        Ok(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            dataplane_image,
            push_to,
            admin_port: resources::ADMIN_PORT as u16,
            operator_namespace: std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            failures: Mutex::default(),
        })
    }

    /// Exponential backoff per gateway: 5 s doubling to 5 min, reset by a success.
    fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(5u64.saturating_mul(1 << (*n - 1).min(6))).min(Duration::from_secs(300))
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// How often a settled gateway is compiled again anyway: the bound on how long a
/// change lost by a watch can go unenforced.
const RESYNC: Duration = Duration::from_secs(60);

fn gateway_key(gw: &AIGateway) -> String {
    format!("{}/{}", gw.namespace().unwrap_or_default(), gw.name_any())
}

pub async fn reconcile(gw: Arc<AIGateway>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_gateway(&gw, &ctx).await;
    ctx.metrics.reconciled(started.elapsed(), result.is_ok());
    result
}

pub fn error_policy(gw: Arc<AIGateway>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff(&gateway_key(&gw));
    tracing::warn!(gateway = %gateway_key(&gw), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn list<K>(client: &Client, ns: &str) -> Result<Vec<K>, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api.list(&ListParams::default()).await?.items)
}

/// Server-side apply of one owned object, forcing ownership of the fields we set.
async fn apply<K>(client: &Client, ns: &str, object: &K) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.patch(
        &object.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// The token the operator presents to the gateway's admin ports: generated once and
/// kept in a Secret the data-plane pods read it from.
async fn admin_token(gw: &AIGateway, ctx: &Context, secrets: &[Secret]) -> Result<String, Error> {
    let name = Names::of(gw).admin_secret;
    let existing = secrets
        .iter()
        .find(|s| s.name_any() == name)
        .and_then(|s| s.data.as_ref()?.get(resources::TOKEN_KEY).cloned())
        .and_then(|v| String::from_utf8(v.0).ok());
    if let Some(token) = existing {
        return Ok(token);
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let secret = resources::admin_secret(gw, &token);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &gw.namespace().unwrap_or_default());
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&params, &secret).await {
        Ok(_) => Ok(token),
        // Another replica of ours won the race: use its token.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let current = api.get(&name).await?;
            Ok(current
                .data
                .and_then(|d| d.get(resources::TOKEN_KEY).cloned())
                .and_then(|v| String::from_utf8(v.0).ok())
                .unwrap_or_default())
        }
        Err(e) => Err(e.into()),
    }
}

fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Admin URLs of the gateway's ready pods, then the out-of-cluster data planes.
async fn data_planes(gw: &AIGateway, ctx: &Context, ns: &str) -> Result<Vec<String>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let selected = pods
        .list(&ListParams::default().labels(&resources::selector_string(gw)))
        .await?;
    let mut urls: Vec<String> = selected
        .items
        .iter()
        .filter(|p| pod_is_ready(p) && p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .map(|ip| format!("http://{ip}:{}", ctx.admin_port))
        .collect();
    urls.extend(ctx.push_to.iter().cloned());
    Ok(urls)
}

/// Brings each data plane to the snapshot; returns how many now serve it, and the
/// failures worth an Event.
async fn sync_all(
    ctx: &Context,
    urls: &[String],
    token: &str,
    compiled: &Compiled,
) -> (i32, Vec<String>) {
    let pusher = Pusher::with_client(ctx.http.clone(), token);
    let syncs = urls.iter().map(|url| {
        let pusher = &pusher;
        async move {
            let started = Instant::now();
            let result = pusher.sync(url, &compiled.snapshot).await;
            let outcome = match &result {
                Ok(true) => "pushed",
                Ok(false) => "current",
                Err(_) => "failed",
            };
            ctx.metrics.synced(started.elapsed(), outcome);
            result
        }
    });
    let results = futures_util::future::join_all(syncs).await;
    let mut applied = 0;
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(_) => applied += 1,
            Err(e) => failures.push(e.to_string()),
        }
    }
    (applied, failures)
}

async fn reconcile_gateway(gw: &AIGateway, ctx: &Context) -> Result<Action, Error> {
    let ns = gw.namespace().ok_or(Error::NoNamespace)?;
    let client = &ctx.client;
    let gateways: Vec<AIGateway> = list(client, &ns).await?;
    let routes: Vec<ProviderRoute> = list(client, &ns).await?;
    let policies: Vec<RateLimitPolicy> = list(client, &ns).await?;
    let secrets: Vec<Secret> = list(client, &ns).await?;
    let namespace = Namespace {
        gateways: vec![gw.clone()],
        routes: routes.clone(),
        policies: policies.clone(),
        secrets: secrets.clone(),
    };
    let compiled = namespace.compile(&gw.name_any())?;
    let config_valid = compiled
        .gateway
        .iter()
        .all(|v| v.r#type != "ConfigValid" || v.status);

    let token = admin_token(gw, ctx, &secrets).await?;
    apply(client, &ns, &resources::service_account(gw)).await?;
    // An invalid snapshot never reaches the pods: they keep the last good one.
    if config_valid {
        let snapshot_json = serde_json::to_string(&compiled.snapshot)?;
        apply(client, &ns, &resources::config_secret(gw, &snapshot_json)).await?;
    }
    apply(
        client,
        &ns,
        &resources::deployment(gw, &ctx.dataplane_image),
    )
    .await?;
    apply(client, &ns, &resources::service(gw)).await?;
    apply(client, &ns, &resources::pod_disruption_budget(gw)).await?;
    let operator_namespace = ctx.operator_namespace.as_deref();
    apply(
        client,
        &ns,
        &resources::network_policy(gw, operator_namespace),
    )
    .await?;

    let urls = data_planes(gw, ctx, &ns).await?;
    let ready = urls.len() as i32;
    let (applied, push_failures) = if config_valid {
        sync_all(ctx, &urls, &token, &compiled).await
    } else {
        (0, Vec::new())
    };

    let version = compiled.snapshot.effective_version();
    let previous = gw.status.clone().unwrap_or_default();
    let push_failed = push_failures.first().map(String::as_str);
    write_gateway_status(
        gw,
        ctx,
        &compiled,
        GatewayProgress {
            config_valid,
            ready,
            applied,
            push_failed,
        },
    )
    .await?;
    write_object_statuses(gw, ctx, &gateways, &routes, &policies, &compiled).await?;

    let gw_ref = gw.object_ref(&());
    if config_valid && previous.config_version.as_deref() != Some(version.as_str()) {
        let snap = &compiled.snapshot;
        let note = format!(
            "version {version}: {} providers, {} routes, {} keys",
            snap.providers.len(),
            snap.routes.len(),
            snap.auth.keys.len()
        );
        publish(ctx, &gw_ref, EventType::Normal, "ConfigCompiled", note).await;
    }
    // Warnings once per change, not once per requeue.
    if !config_valid {
        let message = failures_of(&compiled.gateway, "ConfigValid");
        let said = previous
            .conditions
            .iter()
            .any(|c| c.type_ == "Accepted" && c.status == "False" && c.message == message);
        if !said {
            publish(ctx, &gw_ref, EventType::Warning, "InvalidConfig", message).await;
        }
    }
    let key = gateway_key(gw);
    if let Some(first) = push_failed {
        // From the first failure on, said once per distinct failure (the condition
        // remembers the last one), and retried with backoff rather than every 10 s.
        let said = previous.conditions.iter().any(|c| {
            c.type_ == "ConfigApplied" && c.reason == "PushFailed" && c.message.contains(first)
        });
        for failure in &push_failures {
            tracing::warn!(gateway = %key, %failure, "snapshot push failed");
        }
        if !said {
            publish(
                ctx,
                &gw_ref,
                EventType::Warning,
                "PushFailed",
                push_failures.join("; "),
            )
            .await;
        }
        return Ok(Action::requeue(ctx.backoff(&key)));
    }
    ctx.succeeded(&key);

    // An invalid config waits for an edit, which the watches deliver. Otherwise, until
    // every pod serves the version, look again soon; pods turning ready also wake us
    // through the Deployment's status.
    if !config_valid {
        Ok(Action::requeue(RESYNC))
    } else if applied < ready || ready < gw.spec.replicas {
        Ok(Action::requeue(Duration::from_secs(10)))
    } else {
        Ok(Action::requeue(RESYNC))
    }
}

/// At most `limit` bytes, cut on a character boundary (the API refuses longer notes).
fn truncated(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

fn failures_of(verdicts: &[Verdict], r#type: &str) -> String {
    verdicts
        .iter()
        .filter(|v| v.r#type == r#type && !v.status)
        .map(|v| v.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn publish(
    ctx: &Context,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(truncated(note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    // An Event is a courtesy; failing to write one must not fail the reconcile.
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        tracing::debug!(error = %e, reason, "event not recorded");
    }
}

/// Where bringing the data planes to the snapshot got.
struct GatewayProgress<'a> {
    config_valid: bool,
    ready: i32,
    applied: i32,
    /// The first push that failed, if any did.
    push_failed: Option<&'a str>,
}

async fn write_gateway_status(
    gw: &AIGateway,
    ctx: &Context,
    compiled: &Compiled,
    progress: GatewayProgress<'_>,
) -> Result<(), Error> {
    let GatewayProgress {
        config_valid,
        ready,
        applied,
        push_failed,
    } = progress;
    let now = Timestamp::now();
    let generation = gw.metadata.generation;
    let previous = gw.status.clone().unwrap_or_default();
    let mut verdicts: Vec<Verdict> = compiled
        .gateway
        .iter()
        .map(|v| Verdict {
            // A snapshot that validates is what accepting the gateway means.
            r#type: if v.r#type == "ConfigValid" {
                "Accepted"
            } else {
                v.r#type
            },
            ..v.clone()
        })
        .collect();
    if !verdicts.iter().any(|v| v.r#type == "ResolvedRefs") {
        verdicts.push(Verdict::ok("ResolvedRefs", "ResolvedRefs"));
    }
    let all_applied = config_valid && ready > 0 && applied == ready;
    let serving = format!("{applied} of {ready} ready data planes serve the current snapshot");
    verdicts.push(match push_failed {
        _ if all_applied => Verdict::ok("ConfigApplied", "AppliedToAllReplicas"),
        Some(failure) => Verdict::fail(
            "ConfigApplied",
            "PushFailed",
            truncated(format!("{serving}; {failure}"), 1000),
        ),
        None => Verdict::fail("ConfigApplied", "Pending", serving),
    });
    // Degraded is a warning beside Ready, not a reason for it to fail.
    let ready_verdict = verdicts
        .iter()
        .find(|v| !v.status && v.r#type != "Degraded")
        .map(|v| Verdict::fail("Ready", v.reason, v.message.clone()))
        .unwrap_or_else(|| Verdict::ok("Ready", "Ready"));
    verdicts.push(ready_verdict);
    let conditions = conditions::fold(&verdicts, &previous.conditions, generation, now);
    let config_version = if config_valid {
        Some(compiled.snapshot.effective_version())
    } else {
        previous.config_version.clone()
    };
    let unchanged = !conditions::differ(&previous.conditions, &conditions)
        && previous.config_version == config_version
        && previous.ready_replicas == ready
        && previous.applied_replicas == applied
        && previous.observed_generation == generation;
    if unchanged {
        return Ok(());
    }
    let status = AIGatewayStatus {
        conditions,
        observed_generation: generation,
        config_version,
        ready_replicas: ready,
        applied_replicas: applied,
    };
    let api: Api<AIGateway> =
        Api::namespaced(ctx.client.clone(), &gw.namespace().unwrap_or_default());
    apply_status(&api, gw, &status).await
}

/// Writes an object's whole status by server-side apply, as `MANAGER`: the status
/// fields it no longer sends are dropped, and no other writer's are kept in the way.
async fn apply_status<K>(api: &Api<K>, object: &K, status: &impl Serialize) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The objects that belong to a gateway by naming it.
trait GatewayMember: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug {
    fn gateway_ref(&self) -> &str;
    fn object_status(&self) -> Option<&ObjectStatus>;
}

impl GatewayMember for ProviderRoute {
    fn gateway_ref(&self) -> &str {
        &self.spec.gateway_ref
    }
    fn object_status(&self) -> Option<&ObjectStatus> {
        self.status.as_ref()
    }
}

impl GatewayMember for RateLimitPolicy {
    fn gateway_ref(&self) -> &str {
        &self.spec.gateway_ref
    }
    fn object_status(&self) -> Option<&ObjectStatus> {
        self.status.as_ref()
    }
}

/// Routes and policies of this gateway get their verdicts; those naming a gateway that
/// does not exist get told so (no gateway's reconcile would otherwise reach them).
async fn write_object_statuses(
    gw: &AIGateway,
    ctx: &Context,
    gateways: &[AIGateway],
    routes: &[ProviderRoute],
    policies: &[RateLimitPolicy],
    compiled: &Compiled,
) -> Result<(), Error> {
    let at = Reconciled {
        namespace: &gw.namespace().unwrap_or_default(),
        gateway: &gw.name_any(),
        gateways,
    };
    write_member_statuses(ctx, &at, routes, &compiled.routes).await?;
    write_member_statuses(ctx, &at, policies, &compiled.policies).await
}

/// The gateway whose members' statuses are written, and the gateways that exist beside it.
struct Reconciled<'a> {
    namespace: &'a str,
    gateway: &'a str,
    gateways: &'a [AIGateway],
}

async fn write_member_statuses<K>(
    ctx: &Context,
    at: &Reconciled<'_>,
    members: &[K],
    verdicts_by_name: &std::collections::BTreeMap<String, Vec<Verdict>>,
) -> Result<(), Error>
where
    K: GatewayMember<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), at.namespace);
    for member in members {
        let named = member.gateway_ref();
        let gateways = at.gateways;
        let verdicts = if named == at.gateway && gateways.iter().any(|g| g.name_any() == named) {
            verdicts_by_name.get(&member.name_any()).cloned()
        } else if !gateways.iter().any(|g| g.name_any() == named) {
            Some(vec![Verdict::fail(
                "Accepted",
                "GatewayNotFound",
                format!("no AIGateway named `{named}` in this namespace"),
            )])
        } else {
            None
        };
        if let Some(verdicts) = verdicts {
            write_object_status(ctx, &api, member, member.object_status(), &verdicts).await?;
        }
    }
    Ok(())
}

async fn write_object_status<K>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    status: Option<&ObjectStatus>,
    verdicts: &[Verdict],
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let previous: &[Condition] = status.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let generation = object.meta().generation;
    let same_generation = status.and_then(|s| s.observed_generation) == generation;
    let status = ObjectStatus {
        conditions: conditions::fold(verdicts, previous, generation, Timestamp::now()),
        observed_generation: generation,
    };
    if !conditions::differ(previous, &status.conditions) && same_generation {
        return Ok(());
    }
    apply_status(api, object, &status).await?;
    let newly_failed: Vec<&Condition> = status
        .conditions
        .iter()
        .filter(|c| {
            c.status == "False"
                && !previous
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.status == "False" && p.reason == c.reason)
        })
        .collect();
    for c in newly_failed {
        publish(
            ctx,
            &object.object_ref(&()),
            EventType::Warning,
            &c.reason,
            c.message.clone(),
        )
        .await;
    }
    Ok(())
}

/// Routes and policies naming a gateway that does not exist (never did, or was just
/// deleted): no reconcile of a gateway reaches them, so they are told here.
pub async fn disown(ctx: &Context, namespace: &str, gateway: &str) -> Result<(), Error> {
    let client = &ctx.client;
    let at = Reconciled {
        namespace,
        gateway,
        gateways: &list::<AIGateway>(client, namespace).await?,
    };
    let mut routes: Vec<ProviderRoute> = list(client, namespace).await?;
    routes.retain(|r| r.spec.gateway_ref == gateway);
    let mut policies: Vec<RateLimitPolicy> = list(client, namespace).await?;
    policies.retain(|p| p.spec.gateway_ref == gateway);
    let none = std::collections::BTreeMap::new();
    write_member_statuses(ctx, &at, &routes, &none).await?;
    write_member_statuses(ctx, &at, &policies, &none).await
}

/// Where the controllers look: one namespace, or the whole cluster.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn gateway_of(ns: Option<String>, gateway_ref: &str) -> Option<ObjectRef<AIGateway>> {
    Some(ObjectRef::new(gateway_ref).within(&ns?))
}

/// The backoff of one watch after an error. Each watch has its own: kube's controller
/// otherwise puts one backoff, growing to 30 s, on the stream all watches feed, so the
/// five watches' errors after an API-server restart held every change back for minutes.
pub fn watch_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(WATCH_BACKOFF_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// The longest a change can wait on a failed watch before it is retried.
pub const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The controller's shared trigger stream waits for nothing: every watch feeding it
/// already backs off on its own.
struct NoSharedBackoff;

impl Iterator for NoSharedBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for NoSharedBackoff {
    fn reset(&mut self) {}
}

/// A watch of `K` with its own capped backoff, whose health readiness reports.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    metrics: &Arc<Metrics>,
) -> impl futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    use kube::runtime::WatchStreamExt;
    let metrics = metrics.clone();
    let kind = K::plural(&K::DynamicType::default()).into_owned();
    watcher(api, config)
        .inspect(move |event| match event {
            Ok(_) => metrics.watch_up(&kind),
            Err(e) => metrics.watch_down(&kind, e.to_string()),
        })
        .backoff(watch_backoff())
}

/// Runs the controller until SIGTERM / SIGINT.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    use kube::runtime::{reflector, WatchStreamExt};
    let client = ctx.client.clone();
    let metrics = &ctx.metrics;
    let (gateways, writer) = reflector::store::<AIGateway>();
    // Deletions too: a deleted gateway's routes and policies are then told so (below).
    let gateway_events = reflector(
        writer,
        watch(
            scoped::<AIGateway>(&client, namespace),
            watcher::Config::default(),
            metrics,
        ),
    )
    .touched_objects();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let secret_gateways = gateways.clone();
    Controller::for_stream(gateway_events, gateways)
        .trigger_backoff(NoSharedBackoff)
        .owns_stream(
            watch(scoped::<Deployment>(&client, namespace), owned, metrics).touched_objects(),
        )
        .watches_stream(
            watch(
                scoped::<ProviderRoute>(&client, namespace),
                watcher::Config::default(),
                metrics,
            )
            .touched_objects(),
            |r| gateway_of(r.namespace(), &r.spec.gateway_ref),
        )
        .watches_stream(
            watch(
                scoped::<RateLimitPolicy>(&client, namespace),
                watcher::Config::default(),
                metrics,
            )
            .touched_objects(),
            |p| gateway_of(p.namespace(), &p.spec.gateway_ref),
        )
        // A Secret may hold credentials, a Redis URL or a key for any gateway of its
        // namespace; recompiling those is cheap.
        .watches_stream(
            watch(
                scoped::<Secret>(&client, namespace),
                watcher::Config::default(),
                metrics,
            )
            .touched_objects(),
            move |s| {
                let ns = s.namespace();
                secret_gateways
                    .state()
                    .into_iter()
                    .filter(|g| g.namespace() == ns)
                    .map(|g| ObjectRef::from_obj(&*g))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            use kube::runtime::controller::Error as Run;
            match result {
                Ok((gw, _)) => tracing::debug!(gateway = %gw, "reconciled"),
                Err(Run::QueueError(e)) => tracing::warn!(error = %e, "watch failed; retrying"),
                // A route, policy or deletion pointed at a gateway that is not there.
                Err(Run::ObjectNotFound(gw)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let namespace = gw.namespace.clone().unwrap_or_default();
                        if let Err(e) = disown(&ctx, &namespace, &gw.name).await {
                            tracing::warn!(gateway = %gw, error = %e, "could not update the status of its routes and policies");
                        }
                    });
                }
                Err(e) => tracing::debug!(error = %e, "reconcile not run"),
            }
            std::future::ready(())
        })
        .await;
}
