{{/*
Chart name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "emaillistener.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, cut to 52 characters: a StatefulSet's controller-revision-hash
label is its name plus 11 characters and must fit in 63, and "-headless" must fit too.
*/}}
{{- define "emaillistener.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "emaillistener.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "emaillistener.labels" -}}
helm.sh/chart: {{ include "emaillistener.chart" . }}
{{ include "emaillistener.selectorLabels" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | toString | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: creatio
{{- end }}

{{/*
Selector labels; the StatefulSet selector is immutable, so never add to these.
*/}}
{{- define "emaillistener.selectorLabels" -}}
app.kubernetes.io/name: {{ include "emaillistener.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "emaillistener.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "emaillistener.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "emaillistener.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
Names of the environment variables the user sets in env or extraEnv, as a dict; the chart's
own value of such a variable is left out so no name appears twice (duplicate env names
break strategic-merge and server-side apply).
*/}}
{{- define "emaillistener.userEnvNames" -}}
{{- $names := dict }}
{{- range $k, $v := .Values.env }}
{{- if and (not (kindIs "invalid" $v)) (not (has $k (include "emaillistener.compatEnvKeys" $ | fromYamlArray))) }}
{{- $_ := set $names $k true }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- $_ := set $names .name true }}
{{- end }}
{{- toYaml $names }}
{{- end }}

{{/*
Keys of `env` that are the original Creatio chart's values rather than variable names:
env.host / env.port / env.base were its Redis host, port and database. The service reads no
variable of these (lower-case) names, so the chart translates them instead of passing them on.
*/}}
{{- define "emaillistener.compatEnvKeys" -}}
{{- list "host" "port" "base" | toYaml }}
{{- end }}

{{/*
ExchangeListenerRedisHost from the original chart's env.host and env.port; empty without
env.host. A host that already carries a port is kept as it is.
*/}}
{{- define "emaillistener.compatRedisHost" -}}
{{- $e := .Values.env | default dict }}
{{- with $e.host }}
{{- $h := toString . }}
{{- if and (include "emaillistener.isSet" $e.port) (not (contains ":" $h)) }}
{{- printf "%s:%s" $h (include "emaillistener.envValue" $e.port) }}
{{- else }}
{{- $h }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The path prefix the service serves its API under (EL_PATH_PREFIX): config.pathPrefix, else
the original chart's ingress.path when the ingress is enabled and the path is not "/" (the
original service was published under such a path, e.g. /exchangelistener).
*/}}
{{- define "emaillistener.pathPrefix" -}}
{{- if .Values.config.pathPrefix }}
{{- toString .Values.config.pathPrefix | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.path (ne (toString .Values.ingress.path) "/") }}
{{- toString .Values.ingress.path | trimSuffix "/" }}
{{- end }}
{{- end }}

{{/*
A Go duration ("20s", "1m30s", "1.5m", "500ms") in whole seconds, rounded up; fails on
anything else. Templates have no duration parser, and the grace-period check below must
compare EL_SHUTDOWN_TIMEOUT with terminationGracePeriodSeconds.
*/}}
{{- define "emaillistener.durationSeconds" -}}
{{- $s := toString . | trim }}
{{- if eq $s "0" }}0{{ else }}
{{- $parts := regexFindAll "[0-9]*\\.?[0-9]+(ns|us|µs|ms|s|m|h)" $s -1 }}
{{- if or (not $parts) (ne (join "" $parts) $s) }}
{{- fail (printf "%q is not a duration (e.g. 20s, 1m30s)" $s) }}
{{- end }}
{{- $unit := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range $parts }}
{{- $num := regexFind "^[0-9]*\\.?[0-9]+" . }}
{{- $u := trimPrefix $num . }}
{{- $total = addf $total (mulf (float64 $num) (get $unit $u)) }}
{{- end }}
{{- ceil $total | int }}
{{- end }}
{{- end }}

{{/*
EL_SHUTDOWN_TIMEOUT as the pod will see it: env / extraEnv win over config.shutdownTimeout;
the service's default (20s) when none is set. A valueFrom cannot be read at render time, so
the chart's value is used for it.
*/}}
{{- define "emaillistener.shutdownTimeout" -}}
{{- $v := .Values.config.shutdownTimeout | default "20s" }}
{{- $e := .Values.env | default dict }}
{{- if include "emaillistener.isSet" (get $e "EL_SHUTDOWN_TIMEOUT") }}
{{- $v = get $e "EL_SHUTDOWN_TIMEOUT" }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if and (eq .name "EL_SHUTDOWN_TIMEOUT") .value }}
{{- $v = .value }}
{{- end }}
{{- end }}
{{- toString $v }}
{{- end }}

{{/*
"true" when a Redis connection is configured through first-class values, env or extraEnv.
*/}}
{{- define "emaillistener.redisConfigured" -}}
{{- $user := include "emaillistener.userEnvNames" . | fromYaml }}
{{- $r := .Values.redis }}
{{- $found := or $r.url $r.urlSecret.name $r.host (include "emaillistener.compatRedisHost" .) }}
{{- range (list "EL_REDIS_URL" "EL_REDIS_CONNECTION" "Redis__Connection" "RedisConnection" "ExchangeListenerRedisHost") }}
{{- if hasKey $user . }}
{{- $found = true }}
{{- end }}
{{- end }}
{{- if $found }}true{{ end }}
{{- end }}

{{/*
"true" when the chart creates its own Secret (secret key or Redis password from values).
*/}}
{{- define "emaillistener.createSecret" -}}
{{- if or (and .Values.secretKey.value (not .Values.secretKey.existingSecret)) (and .Values.redis.password (not .Values.redis.passwordSecret.name)) }}true{{ end }}
{{- end }}

{{/*
Name of the Secret holding the secret key: the user's or the chart's; empty when none.
*/}}
{{- define "emaillistener.secretKeySecret" -}}
{{- if .Values.secretKey.existingSecret }}
{{- .Values.secretKey.existingSecret }}
{{- else if .Values.secretKey.value }}
{{- include "emaillistener.fullname" . }}
{{- end }}
{{- end }}

{{- define "emaillistener.secretKeySecretKey" -}}
{{- if .Values.secretKey.existingSecret }}
{{- .Values.secretKey.existingSecretKey | default "secret-key" }}
{{- else }}secret-key{{ end }}
{{- end }}

{{/*
Fail rendering on settings the service would refuse or that would split the mailboxes.
Included by the StatefulSet, so every install, upgrade and template run checks them.
*/}}
{{- define "emaillistener.validate" -}}
{{- $redis := include "emaillistener.redisConfigured" . }}
{{- $user := include "emaillistener.userEnvNames" . | fromYaml }}
{{- $r := .Values.redis }}
{{- if and (gt (int .Values.replicaCount) 1) (not $redis) (not .Values.autoscaling.enabled) }}
{{- fail (printf "replicaCount is %d but no Redis is configured: Redis is required for more than one replica (each pod would otherwise keep its own in-memory mailbox registry). Set redis.url, redis.urlSecret.name or redis.host (ExchangeListenerRedisHost), or set replicaCount to 1." (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not $redis) }}
{{- fail "autoscaling.enabled needs Redis: Redis is required for more than one replica. Set redis.url, redis.urlSecret.name or redis.host (ExchangeListenerRedisHost)." }}
{{- end }}
{{- $k := .Values.keda }}
{{- if and .Values.autoscaling.enabled $k.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are mutually exclusive: KEDA creates and owns its own HorizontalPodAutoscaler for the StatefulSet, and two autoscalers would fight over its replicas. Enable only one." }}
{{- end }}
{{- if $k.enabled }}
{{- if not $redis }}
{{- fail "keda.enabled needs Redis: Redis is required for more than one replica. Set redis.url, redis.urlSecret.name or redis.host (ExchangeListenerRedisHost)." }}
{{- end }}
{{- if lt (int $k.minReplicaCount) 1 }}
{{- fail "keda.minReplicaCount must be at least 1: with no pod Creatio's calls fail and no mailbox is watched" }}
{{- end }}
{{- if gt (int $k.minReplicaCount) (int $k.maxReplicaCount) }}
{{- fail "keda.minReplicaCount must not be greater than keda.maxReplicaCount" }}
{{- end }}
{{- if not $k.prometheus.serverAddress }}
{{- fail "keda.enabled needs keda.prometheus.serverAddress, the Prometheus KEDA queries (e.g. http://prometheus-operated.monitoring.svc:9090)" }}
{{- end }}
{{- end }}
{{- if and (include "emaillistener.isSet" .Values.service.nodePort) (eq (toString .Values.service.type) "ClusterIP") }}
{{- fail "service.nodePort needs service.type NodePort or LoadBalancer" }}
{{- end }}
{{- $e := .Values.env | default dict }}
{{- if and (or (include "emaillistener.isSet" $e.port) (include "emaillistener.isSet" $e.base)) (not $e.host) }}
{{- fail "env.port and env.base (the original chart's Redis port and database) need env.host" }}
{{- end }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- $timeout := include "emaillistener.durationSeconds" (include "emaillistener.shutdownTimeout" .) | int }}
{{- $sleep := 0 }}
{{- with .Values.lifecycle }}{{ with .preStop }}{{ with .sleep }}{{ $sleep = int .seconds }}{{ end }}{{ end }}{{ end }}
{{- $need := add $sleep $timeout (int .Values.shutdownHandoffSeconds) }}
{{- if lt $grace $need }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least %d: EL_SHUTDOWN_TIMEOUT (%ds) + preStop sleep (%ds) + shutdownHandoffSeconds (%d). Kubernetes kills the pod after the grace period, and a pod killed while handing its mailboxes over leaves them unwatched until their leases expire." $grace $need $timeout $sleep (int .Values.shutdownHandoffSeconds)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas" }}
{{- end }}
{{- $sources := 0 }}
{{- range (list $r.url $r.urlSecret.name $r.host (include "emaillistener.compatRedisHost" .)) }}
{{- if . }}{{ $sources = add1 $sources }}{{ end }}
{{- end }}
{{- if gt $sources 1 }}
{{- fail "set only one of redis.url, redis.urlSecret.name, redis.host and env.host (the original chart's Redis host)" }}
{{- end }}
{{- if and $r.password $r.passwordSecret.name }}
{{- fail "set redis.password or redis.passwordSecret.name, not both" }}
{{- end }}
{{- if and .Values.secretKey.value .Values.secretKey.existingSecret }}
{{- fail "set secretKey.value or secretKey.existingSecret, not both" }}
{{- end }}
{{- if .Values.secretKey.value }}
{{- if ne (len (b64dec .Values.secretKey.value)) 32 }}
{{- fail "secretKey.value must be the base64 encoding of 32 random bytes: openssl rand -base64 32" }}
{{- end }}
{{- end }}
{{- $hasKey := or .Values.secretKey.existingSecret .Values.secretKey.value .Values.secretKey.allowPlaintextSecrets (hasKey $user "EL_SECRET_KEY") (hasKey $user "EL_SECRET_KEY_FILE") (hasKey $user "EL_ALLOW_PLAINTEXT_SECRETS") }}
{{- if and $redis (not $hasKey) }}
{{- fail "Redis is configured but no secret key: the service refuses to store mailbox credentials unencrypted. Set secretKey.existingSecret (recommended; kubectl create secret generic <name> --from-literal=secret-key=\"$(openssl rand -base64 32)\") or secretKey.value, or secretKey.allowPlaintextSecrets=true (unsafe)." }}
{{- end }}
{{- $prefix := include "emaillistener.pathPrefix" . }}
{{- if and $prefix (not (hasPrefix "/" $prefix)) }}
{{- fail "config.pathPrefix and ingress.path must start with /, e.g. /exchangelistener" }}
{{- end }}
{{- if and .Values.config.pathPrefix (eq (toString .Values.config.pathPrefix) "/") }}
{{- fail "config.pathPrefix must not be / (leave it empty to serve at the root only)" }}
{{- end }}
{{- with .Values.podDisruptionBudget }}
{{- if .enabled }}
{{- $min := include "emaillistener.isSet" .minAvailable }}
{{- $max := include "emaillistener.isSet" .maxUnavailable }}
{{- if not (or $min $max) }}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable (or enabled=false)" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The container's environment: the chart's own variables (unless the user sets the same name),
then env, then extraEnv.
*/}}
{{- define "emaillistener.env" -}}
{{- $user := include "emaillistener.userEnvNames" . | fromYaml }}
{{- $own := list }}
{{- $own = append $own (dict "name" "PodName" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.name"))) }}
{{- $own = append $own (dict "name" "EL_LISTEN_ADDR" "value" (printf ":%d" (int .Values.containerPort))) }}
{{- with .Values.config }}
{{- if .logLevel }}{{ $own = append $own (dict "name" "EL_LOG_LEVEL" "value" (toString .logLevel)) }}{{ end }}
{{- if .logFormat }}{{ $own = append $own (dict "name" "EL_LOG_FORMAT" "value" (toString .logFormat)) }}{{ end }}
{{- if .maxSubscriptions }}{{ $own = append $own (dict "name" "EL_MAX_SUBSCRIPTIONS" "value" (toString (int64 .maxSubscriptions))) }}{{ end }}
{{- if .shutdownTimeout }}{{ $own = append $own (dict "name" "EL_SHUTDOWN_TIMEOUT" "value" (toString .shutdownTimeout)) }}{{ end }}
{{- end }}
{{- with include "emaillistener.pathPrefix" . }}
{{- $own = append $own (dict "name" "EL_PATH_PREFIX" "value" .) }}
{{- end }}
{{- $r := .Values.redis }}
{{- $compatHost := include "emaillistener.compatRedisHost" . }}
{{- if $r.url }}
{{- $own = append $own (dict "name" "EL_REDIS_URL" "value" (toString $r.url)) }}
{{- else if $r.urlSecret.name }}
{{- $own = append $own (dict "name" "EL_REDIS_URL" "valueFrom" (dict "secretKeyRef" (dict "name" $r.urlSecret.name "key" ($r.urlSecret.key | default "redis-url")))) }}
{{- else if $r.host }}
{{- $own = append $own (dict "name" "ExchangeListenerRedisHost" "value" (toString $r.host)) }}
{{- $own = append $own (dict "name" "ExchangeListenerRedisDatabase" "value" (toString (int64 ($r.database | default 0)))) }}
{{- else if $compatHost }}
{{- $own = append $own (dict "name" "ExchangeListenerRedisHost" "value" $compatHost) }}
{{- $db := $r.database | default 0 }}
{{- if include "emaillistener.isSet" .Values.env.base }}{{ $db = .Values.env.base }}{{ end }}
{{- $own = append $own (dict "name" "ExchangeListenerRedisDatabase" "value" (include "emaillistener.envValue" $db)) }}
{{- end }}
{{- if $r.passwordSecret.name }}
{{- $own = append $own (dict "name" "ExchangeListenerRedisPassword" "valueFrom" (dict "secretKeyRef" (dict "name" $r.passwordSecret.name "key" ($r.passwordSecret.key | default "redis-password")))) }}
{{- else if $r.password }}
{{- $own = append $own (dict "name" "ExchangeListenerRedisPassword" "valueFrom" (dict "secretKeyRef" (dict "name" (include "emaillistener.fullname" .) "key" "redis-password"))) }}
{{- end }}
{{- if $r.prefix }}{{ $own = append $own (dict "name" "EL_REDIS_PREFIX" "value" (toString $r.prefix)) }}{{ end }}
{{- if $r.tlsInsecure }}{{ $own = append $own (dict "name" "EL_REDIS_TLS_INSECURE" "value" "true") }}{{ end }}
{{- if include "emaillistener.secretKeySecret" . }}
{{- $own = append $own (dict "name" "EL_SECRET_KEY_FILE" "value" "/etc/emaillistener/secret-key/secret-key") }}
{{- end }}
{{- if .Values.secretKey.allowPlaintextSecrets }}
{{- $own = append $own (dict "name" "EL_ALLOW_PLAINTEXT_SECRETS" "value" "true") }}
{{- end }}
{{- $out := list }}
{{- range $own }}
{{- if not (hasKey $user .name) }}
{{- $out = append $out . }}
{{- end }}
{{- end }}
{{- $compat := include "emaillistener.compatEnvKeys" . | fromYamlArray }}
{{- range $k, $v := .Values.env }}
{{- if and (not (kindIs "invalid" $v)) (not (has $k $compat)) }}
{{- $out = append $out (dict "name" $k "value" (include "emaillistener.envValue" $v)) }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- $out = append $out . }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
An env map value as a string. YAML numbers reach templates as float64, which toString would
print as 6.7108864e+07; whole numbers are printed as integers instead.
*/}}
{{- define "emaillistener.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}
{{- printf "%d" (int64 .) }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
"true" when a value is present and not the empty string (0 counts as set).
*/}}
{{- define "emaillistener.isSet" -}}
{{- if and (not (kindIs "invalid" .)) (ne (toString .) "") }}true{{ end }}
{{- end }}
