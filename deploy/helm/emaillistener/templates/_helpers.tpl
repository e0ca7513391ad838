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
{{- if not (kindIs "invalid" $v) }}
{{- $_ := set $names $k true }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- $_ := set $names .name true }}
{{- end }}
{{- toYaml $names }}
{{- end }}

{{/*
"true" when a Redis connection is configured through first-class values, env or extraEnv.
*/}}
{{- define "emaillistener.redisConfigured" -}}
{{- $user := include "emaillistener.userEnvNames" . | fromYaml }}
{{- $r := .Values.redis }}
{{- $found := or $r.url $r.urlSecret.name $r.host }}
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
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas" }}
{{- end }}
{{- $sources := 0 }}
{{- range (list $r.url $r.urlSecret.name $r.host) }}
{{- if . }}{{ $sources = add1 $sources }}{{ end }}
{{- end }}
{{- if gt $sources 1 }}
{{- fail "set only one of redis.url, redis.urlSecret.name and redis.host" }}
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
{{- if and .Values.config.pathPrefix (or (not (hasPrefix "/" (toString .Values.config.pathPrefix))) (eq (toString .Values.config.pathPrefix) "/")) }}
{{- fail "config.pathPrefix must start with / and not be /, e.g. /exchangelistener" }}
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
{{- if .pathPrefix }}{{ $own = append $own (dict "name" "EL_PATH_PREFIX" "value" (toString .pathPrefix)) }}{{ end }}
{{- if .shutdownTimeout }}{{ $own = append $own (dict "name" "EL_SHUTDOWN_TIMEOUT" "value" (toString .shutdownTimeout)) }}{{ end }}
{{- end }}
{{- $r := .Values.redis }}
{{- if $r.url }}
{{- $own = append $own (dict "name" "EL_REDIS_URL" "value" (toString $r.url)) }}
{{- else if $r.urlSecret.name }}
{{- $own = append $own (dict "name" "EL_REDIS_URL" "valueFrom" (dict "secretKeyRef" (dict "name" $r.urlSecret.name "key" ($r.urlSecret.key | default "redis-url")))) }}
{{- else if $r.host }}
{{- $own = append $own (dict "name" "ExchangeListenerRedisHost" "value" (toString $r.host)) }}
{{- $own = append $own (dict "name" "ExchangeListenerRedisDatabase" "value" (toString (int64 ($r.database | default 0)))) }}
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
{{- range $k, $v := .Values.env }}
{{- if not (kindIs "invalid" $v) }}
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
