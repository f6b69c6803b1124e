{{/*
vitals-agent library: adds the vitals agent to an application's pod template.

Why a library: the agent is a sidecar, so it belongs in the app's own chart
and release (one rollout, one pod); platform teams keep how it is added
(security context, volumes, probes, knobs) in one place.

Entry points (each takes a dict; "root" is the calling chart's context, "."):
  vitals-agent.podTemplate  (dict "root" . "template" $podTemplate ["values" $perWorkload])
      returns the pod template (metadata + spec) with the agent added: as a
      native sidecar (the first initContainer, restartPolicy: Always, with a
      startup probe, so the socket exists before the app starts) on
      Kubernetes >= 1.29, as a plain container below (nativeSidecar: auto);
      the socket emptyDir, the spool volume and the token Secret volume; the
      socket mount and VITALS_SOCKET_DIR / OTEL_EXPORTER_OTLP_ENDPOINT in the
      app's containers (those named in appContainers, default all); the
      label that the scorer's NetworkPolicy admits; fsGroup 65532 when the
      pod sets none.
  vitals-agent.container, .volumes, .appEnv, .appVolumeMounts, .podLabels,
  vitals-agent.native  (dict "root" . ["values" $v]): the same pieces, for
      charts that prefer to place them by hand.
Values: defaults below ("vitals-agent.defaults"), overridden by the app's
.Values.vitalsAgent, overridden by the "values" of the call (per workload).
Bad values stop the render with a message naming the key.
*/}}

{{- define "vitals-agent.defaults" -}}
enabled: true
image:
  repository: ghcr.io/vitals-dev/vitals
  tag: "0.1.0"
  digest: ""
  pullPolicy: IfNotPresent
# auto: native sidecar when the cluster is >= 1.29 (.Capabilities.KubeVersion)
nativeSidecar: auto
# Service name the agent stamps on records; empty: the pod's label below,
# read through the downward API.
serviceName: ""
serviceLabel: app.kubernetes.io/name
scorer:
  address: http://vitals-scorer.vitals.svc:7400
  # Secret in the app's namespace holding the ingest token (a copy of the
  # scorer's; see the vitals chart's NOTES).
  tokenSecret:
    name: vitals-token
    key: token
    optional: false
socketDir: /run/vitals
# Mode of ingest.sock / ingest.dgram. The directory is an emptyDir private to
# the pod, so 0666 lets app containers running as any UID connect.
socketMode: "0666"
adminPort: 7401
otlp:
  grpcPort: 4317
  httpPort: 4318
batching:
  window: 10s
  # Longest a received record waits in memory before the spool write.
  flushInterval: 200ms
  maxBytes: 4194304
  maxAggregates: 1000
  maxInFlight: 4
  compressionLevel: 1
spool:
  maxBytes: 1073741824
  fsync: interval
  fsyncInterval: 1s
  # emptyDir (kept across container restarts), ephemeral (a PVC per pod,
  # survives node pressure eviction of the emptyDir), existingClaim
  volume: emptyDir
  sizeLimit: 1536Mi
  ephemeral:
    storageClassName: ""
    size: 2Gi
  existingClaim: ""
maxSeries: 1000
logLevel: info
shutdownGrace: 10s
resources:
  requests:
    cpu: 50m
    memory: 64Mi
  limits:
    cpu: "1"
    memory: 256Mi
probes:
  startup:
    path: /healthz
    periodSeconds: 1
    failureThreshold: 30
  liveness:
    path: /healthz
    periodSeconds: 10
    failureThreshold: 3
  # Not /readyz: the agent's /readyz fails while shipping lags (scorer down),
  # and a sidecar's readiness is the pod's: an outage of the scorer must
  # cost spool disk, never the app's traffic. Alert on the lag instead.
  readiness:
    path: /healthz
    periodSeconds: 5
    failureThreshold: 3
appContainers: []
extraEnv: []
podLabels:
  vitals.dev/agent: "true"
{{- end -}}

{{/* Recursive merge of maps: src wins, including false / 0 / "" (which
sprig's mergeOverwrite would skip). Mutates dst; copies what it takes. */}}
{{- define "vitals-agent.merge" -}}
{{- $dst := .dst -}}
{{- range $k, $v := .src -}}
{{- if and (kindIs "map" $v) (kindIs "map" (get $dst $k)) -}}
{{- include "vitals-agent.merge" (dict "dst" (get $dst $k) "src" $v) -}}
{{- else if or (kindIs "map" $v) (kindIs "slice" $v) -}}
{{- $_ := set $dst $k (deepCopy $v) -}}
{{- else -}}
{{- $_ := set $dst $k $v -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The merged, validated configuration, as YAML. */}}
{{- define "vitals-agent.config" -}}
{{- $cfg := include "vitals-agent.defaults" . | fromYaml -}}
{{- $app := .root.Values.vitalsAgent | default dict -}}
{{- if not (kindIs "map" $app) -}}{{- fail "vitalsAgent: must be a map" -}}{{- end -}}
{{- include "vitals-agent.merge" (dict "dst" $cfg "src" $app) -}}
{{- with .values -}}{{- include "vitals-agent.merge" (dict "dst" $cfg "src" .) -}}{{- end -}}
{{- include "vitals-agent.validate" $cfg -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "vitals-agent.validate" -}}
{{- $c := . -}}
{{- $dur := "^[0-9]+(ms|s|m|h)$" -}}
{{- if not (kindIs "bool" $c.enabled) -}}{{- fail "vitalsAgent.enabled: must be true or false" -}}{{- end -}}
{{- if not (has (toString $c.nativeSidecar) (list "auto" "true" "false")) -}}
{{- fail (printf "vitalsAgent.nativeSidecar: %v is not auto, true or false" $c.nativeSidecar) -}}{{- end -}}
{{- if not $c.image.repository -}}{{- fail "vitalsAgent.image.repository: required" -}}{{- end -}}
{{- if not (regexMatch "^https?://[^/]+(:[0-9]+)?/?$" (toString $c.scorer.address)) -}}
{{- fail (printf "vitalsAgent.scorer.address: %q is not http(s)://host:port" (toString $c.scorer.address)) -}}{{- end -}}
{{- if not $c.scorer.tokenSecret.name -}}{{- fail "vitalsAgent.scorer.tokenSecret.name: required" -}}{{- end -}}
{{- if not (hasPrefix "/" (toString $c.socketDir)) -}}{{- fail "vitalsAgent.socketDir: must be an absolute path" -}}{{- end -}}
{{- range $k := list "adminPort" -}}
{{- $p := get $c $k -}}
{{- if or (not (or (kindIs "float64" $p) (kindIs "int64" $p) (kindIs "int" $p))) (lt (float64 $p) 1.0) (gt (float64 $p) 65535.0) -}}
{{- fail (printf "vitalsAgent.%s: %v is not a port (1-65535)" $k $p) -}}{{- end -}}
{{- end -}}
{{- range $k := list "grpcPort" "httpPort" -}}
{{- $p := get $c.otlp $k -}}
{{- if or (not (or (kindIs "float64" $p) (kindIs "int64" $p) (kindIs "int" $p))) (lt (float64 $p) 1.0) (gt (float64 $p) 65535.0) -}}
{{- fail (printf "vitalsAgent.otlp.%s: %v is not a port (1-65535)" $k $p) -}}{{- end -}}
{{- end -}}
{{- range $k := list "window" "flushInterval" -}}
{{- if not (regexMatch $dur (toString (get $c.batching $k))) -}}
{{- fail (printf "vitalsAgent.batching.%s: %q is not a duration like 10s" $k (toString (get $c.batching $k))) -}}{{- end -}}
{{- end -}}
{{- range $k := list "fsyncInterval" -}}
{{- if not (regexMatch $dur (toString (get $c.spool $k))) -}}
{{- fail (printf "vitalsAgent.spool.%s: %q is not a duration like 1s" $k (toString (get $c.spool $k))) -}}{{- end -}}
{{- end -}}
{{- if not (regexMatch $dur (toString $c.shutdownGrace)) -}}
{{- fail (printf "vitalsAgent.shutdownGrace: %q is not a duration like 10s" (toString $c.shutdownGrace)) -}}{{- end -}}
{{- range $k := list "maxBytes" "maxAggregates" "maxInFlight" -}}
{{- $v := get $c.batching $k -}}
{{- if or (not (or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v))) (lt (float64 $v) 1.0) (ne (float64 $v) (floor $v)) -}}
{{- fail (printf "vitalsAgent.batching.%s: %v is not a positive integer" $k $v) -}}{{- end -}}
{{- end -}}
{{- $lvl := $c.batching.compressionLevel -}}
{{- if or (not (or (kindIs "float64" $lvl) (kindIs "int64" $lvl) (kindIs "int" $lvl))) (lt (float64 $lvl) -7.0) (gt (float64 $lvl) 19.0) -}}
{{- fail (printf "vitalsAgent.batching.compressionLevel: %v is not a zstd level -7..19" $lvl) -}}{{- end -}}
{{- if not (regexMatch "^0[0-7]{3}$" (toString $c.socketMode)) -}}
{{- fail (printf "vitalsAgent.socketMode: %q is not an octal mode such as \"0666\" (quote it)" (toString $c.socketMode)) -}}{{- end -}}
{{- range $k := list "maxBytes" -}}
{{- $v := get $c.spool $k -}}
{{- if or (not (or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v))) (lt (float64 $v) 1048576.0) -}}
{{- fail (printf "vitalsAgent.spool.%s: %v must be a number of bytes >= 1048576" $k $v) -}}{{- end -}}
{{- end -}}
{{- if or (not (or (kindIs "float64" $c.maxSeries) (kindIs "int64" $c.maxSeries) (kindIs "int" $c.maxSeries))) (lt (float64 $c.maxSeries) 1.0) -}}
{{- fail (printf "vitalsAgent.maxSeries: %v is not a positive integer" $c.maxSeries) -}}{{- end -}}
{{- if not (has (toString $c.spool.fsync) (list "none" "interval" "always")) -}}
{{- fail (printf "vitalsAgent.spool.fsync: %q is not none, interval or always" (toString $c.spool.fsync)) -}}{{- end -}}
{{- if not (has (toString $c.spool.volume) (list "emptyDir" "ephemeral" "existingClaim")) -}}
{{- fail (printf "vitalsAgent.spool.volume: %q is not emptyDir, ephemeral or existingClaim" (toString $c.spool.volume)) -}}{{- end -}}
{{- if and (eq (toString $c.spool.volume) "existingClaim") (not $c.spool.existingClaim) -}}
{{- fail "vitalsAgent.spool.existingClaim: required when spool.volume is existingClaim" -}}{{- end -}}
{{- if not (has (toString $c.logLevel) (list "debug" "info" "warn" "error")) -}}
{{- fail (printf "vitalsAgent.logLevel: %q is not debug, info, warn or error" (toString $c.logLevel)) -}}{{- end -}}
{{- if not (kindIs "slice" $c.appContainers) -}}{{- fail "vitalsAgent.appContainers: must be a list of container names" -}}{{- end -}}
{{- if not (kindIs "slice" $c.extraEnv) -}}{{- fail "vitalsAgent.extraEnv: must be a list of EnvVar" -}}{{- end -}}
{{- end -}}

{{/* "true" when the agent runs as a native sidecar, "" otherwise. */}}
{{- define "vitals-agent.native" -}}
{{- $cfg := include "vitals-agent.config" . | fromYaml -}}
{{- $n := toString $cfg.nativeSidecar -}}
{{- if eq $n "true" -}}true
{{- else if and (eq $n "auto") (semverCompare ">=1.29.0-0" .root.Capabilities.KubeVersion.Version) -}}true
{{- end -}}
{{- end -}}

{{- define "vitals-agent.image" -}}
{{- if .digest -}}{{ printf "%s@%s" .repository .digest }}{{- else -}}{{ printf "%s:%s" .repository (toString .tag) }}{{- end -}}
{{- end -}}

{{- define "vitals-agent.probe" -}}
httpGet:
  path: {{ .p.path }}
  port: vitals-admin
periodSeconds: {{ .p.periodSeconds | int }}
failureThreshold: {{ .p.failureThreshold | int }}
timeoutSeconds: 2
{{- end -}}

{{/* The agent container (one map). */}}
{{- define "vitals-agent.container" -}}
{{- $c := include "vitals-agent.config" . | fromYaml -}}
name: vitals-agent
image: {{ include "vitals-agent.image" $c.image }}
imagePullPolicy: {{ $c.image.pullPolicy }}
command: [/usr/local/bin/vitals-agent]
{{- if include "vitals-agent.native" . }}
restartPolicy: Always
{{- end }}
env:
  - {name: VITALS_SOCKET_DIR, value: {{ $c.socketDir | quote }}}
  - {name: VITALS_SOCKET_MODE, value: {{ $c.socketMode | toString | quote }}}
  - {name: VITALS_SPOOL_DIR, value: /var/lib/vitals/spool}
  - {name: VITALS_SCORER, value: {{ $c.scorer.address | quote }}}
  - {name: VITALS_TOKEN_FILE, value: /var/run/secrets/vitals/token}
  - {name: VITALS_ADMIN_ADDR, value: {{ printf "0.0.0.0:%d" (int $c.adminPort) | quote }}}
  - {name: VITALS_OTLP_GRPC_ADDR, value: {{ printf "127.0.0.1:%d" (int $c.otlp.grpcPort) | quote }}}
  - {name: VITALS_OTLP_HTTP_ADDR, value: {{ printf "127.0.0.1:%d" (int $c.otlp.httpPort) | quote }}}
  {{- if $c.serviceName }}
  - {name: VITALS_SERVICE, value: {{ $c.serviceName | quote }}}
  {{- else }}
  - name: VITALS_SERVICE
    valueFrom:
      fieldRef:
        fieldPath: {{ printf "metadata.labels['%s']" $c.serviceLabel }}
  {{- end }}
  - name: VITALS_AGENT_ID
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - {name: VITALS_WINDOW, value: {{ $c.batching.window | quote }}}
  - {name: VITALS_FLUSH_INTERVAL, value: {{ $c.batching.flushInterval | quote }}}
  - {name: VITALS_BATCH_MAX_BYTES, value: {{ $c.batching.maxBytes | int64 | toString | quote }}}
  - {name: VITALS_BATCH_MAX_AGGREGATES, value: {{ $c.batching.maxAggregates | int64 | toString | quote }}}
  - {name: VITALS_MAX_IN_FLIGHT, value: {{ $c.batching.maxInFlight | int64 | toString | quote }}}
  - {name: VITALS_COMPRESSION_LEVEL, value: {{ $c.batching.compressionLevel | int64 | toString | quote }}}
  - {name: VITALS_SPOOL_MAX_BYTES, value: {{ $c.spool.maxBytes | int64 | toString | quote }}}
  - {name: VITALS_FSYNC, value: {{ $c.spool.fsync | quote }}}
  - {name: VITALS_FSYNC_INTERVAL, value: {{ $c.spool.fsyncInterval | quote }}}
  - {name: VITALS_MAX_SERIES, value: {{ $c.maxSeries | int64 | toString | quote }}}
  - {name: VITALS_LOG_LEVEL, value: {{ $c.logLevel | quote }}}
  - {name: VITALS_SHUTDOWN_GRACE, value: {{ $c.shutdownGrace | quote }}}
  {{- with $c.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - {name: vitals-admin, containerPort: {{ $c.adminPort | int }}, protocol: TCP}
startupProbe:
  {{- include "vitals-agent.probe" (dict "p" $c.probes.startup) | nindent 2 }}
livenessProbe:
  {{- include "vitals-agent.probe" (dict "p" $c.probes.liveness) | nindent 2 }}
readinessProbe:
  {{- include "vitals-agent.probe" (dict "p" $c.probes.readiness) | nindent 2 }}
resources:
  {{- toYaml $c.resources | nindent 2 }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  privileged: false
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
volumeMounts:
  - {name: vitals-socket, mountPath: {{ $c.socketDir | quote }}}
  - {name: vitals-spool, mountPath: /var/lib/vitals/spool}
  - {name: vitals-token, mountPath: /var/run/secrets/vitals, readOnly: true}
{{- end -}}

{{/* The pod volumes the agent needs (a list). */}}
{{- define "vitals-agent.volumes" -}}
{{- $c := include "vitals-agent.config" . | fromYaml -}}
- name: vitals-socket
  emptyDir:
    sizeLimit: 1Mi
- name: vitals-spool
  {{- if eq $c.spool.volume "emptyDir" }}
  emptyDir:
    sizeLimit: {{ $c.spool.sizeLimit }}
  {{- else if eq $c.spool.volume "ephemeral" }}
  ephemeral:
    volumeClaimTemplate:
      metadata:
        labels:
          app.kubernetes.io/component: vitals-agent-spool
      spec:
        accessModes: [ReadWriteOnce]
        {{- with $c.spool.ephemeral.storageClassName }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ $c.spool.ephemeral.size }}
  {{- else }}
  persistentVolumeClaim:
    claimName: {{ $c.spool.existingClaim }}
  {{- end }}
- name: vitals-token
  secret:
    secretName: {{ $c.scorer.tokenSecret.name }}
    optional: {{ $c.scorer.tokenSecret.optional }}
    defaultMode: 0444
    items:
      - {key: {{ $c.scorer.tokenSecret.key }}, path: token}
{{- end -}}

{{/* Environment for the app's containers (a list). */}}
{{- define "vitals-agent.appEnv" -}}
{{- $c := include "vitals-agent.config" . | fromYaml -}}
- {name: VITALS_SOCKET_DIR, value: {{ $c.socketDir | quote }}}
- {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ printf "http://127.0.0.1:%d" (int $c.otlp.httpPort) | quote }}}
- {name: OTEL_EXPORTER_OTLP_PROTOCOL, value: http/protobuf}
{{- end -}}

{{/* Volume mounts for the app's containers (a list). */}}
{{- define "vitals-agent.appVolumeMounts" -}}
{{- $c := include "vitals-agent.config" . | fromYaml -}}
- {name: vitals-socket, mountPath: {{ $c.socketDir | quote }}}
{{- end -}}

{{/* Labels for the pod template (a map): the scorer's NetworkPolicy admits these. */}}
{{- define "vitals-agent.podLabels" -}}
{{- $c := include "vitals-agent.config" . | fromYaml -}}
{{- toYaml $c.podLabels -}}
{{- end -}}

{{/* The whole pod template with the agent added; see the top of this file. */}}
{{- define "vitals-agent.podTemplate" -}}
{{- if not (kindIs "map" .template) -}}{{- fail "vitals-agent.podTemplate: \"template\" must be a map (metadata, spec)" -}}{{- end -}}
{{- if hasKey .template "Error" -}}{{- fail (printf "vitals-agent.podTemplate: the pod template is not valid YAML: %s" .template.Error) -}}{{- end -}}
{{- $t := deepCopy .template -}}
{{- $c := include "vitals-agent.config" . | fromYaml -}}
{{- if $c.enabled -}}
{{- $args := dict "root" .root "values" .values -}}
{{- $meta := $t.metadata | default dict -}}
{{- $_ := set $t "metadata" $meta -}}
{{- $labels := $meta.labels | default dict -}}
{{- $_ := set $meta "labels" (merge $labels (include "vitals-agent.podLabels" $args | fromYaml)) -}}
{{- $spec := $t.spec | default dict -}}
{{- $_ := set $t "spec" $spec -}}
{{- if not $spec.containers -}}{{- fail "vitals-agent.podTemplate: spec.containers is empty" -}}{{- end -}}
{{- $ann := $meta.annotations | default dict -}}
{{- if not (hasKey $ann "kubectl.kubernetes.io/default-container") -}}
{{- $_ := set $ann "kubectl.kubernetes.io/default-container" (first $spec.containers).name -}}
{{- end -}}
{{- $_ := set $meta "annotations" $ann -}}
{{- $appEnv := include "vitals-agent.appEnv" $args | fromYamlArray -}}
{{- $appMounts := include "vitals-agent.appVolumeMounts" $args | fromYamlArray -}}
{{- range $ctr := $spec.containers -}}
{{- if or (not $c.appContainers) (has $ctr.name $c.appContainers) -}}
{{- $env := $ctr.env | default list -}}
{{- $names := list -}}{{- range $env -}}{{- $names = append $names .name -}}{{- end -}}
{{- range $appEnv -}}{{- if not (has .name $names) -}}{{- $env = append $env . -}}{{- end -}}{{- end -}}
{{- $_ := set $ctr "env" $env -}}
{{- $mounts := $ctr.volumeMounts | default list -}}
{{- $names = list -}}{{- range $mounts -}}{{- $names = append $names .name -}}{{- end -}}
{{- range $appMounts -}}{{- if not (has .name $names) -}}{{- $mounts = append $mounts . -}}{{- end -}}{{- end -}}
{{- $_ := set $ctr "volumeMounts" $mounts -}}
{{- end -}}
{{- end -}}
{{- $agent := include "vitals-agent.container" $args | fromYaml -}}
{{- if include "vitals-agent.native" $args -}}
{{- $_ := set $spec "initContainers" (prepend ($spec.initContainers | default list) $agent) -}}
{{- else -}}
{{- $_ := set $spec "containers" (append $spec.containers $agent) -}}
{{- end -}}
{{- $_ := set $spec "volumes" (concat ($spec.volumes | default list) (include "vitals-agent.volumes" $args | fromYamlArray)) -}}
{{- $psc := $spec.securityContext | default dict -}}
{{- if not (hasKey $psc "fsGroup") -}}{{- $_ := set $psc "fsGroup" 65532 -}}{{- end -}}
{{- $_ := set $spec "securityContext" $psc -}}
{{- end -}}
{{- toYaml $t -}}
{{- end -}}
