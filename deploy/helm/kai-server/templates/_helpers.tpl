{{/*
The chart name, shortened to the 63 characters that Kubernetes names allow.
*/}}
{{- define "kai-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name, followed by the chart name
unless the release name already contains it.
*/}}
{{- define "kai-server.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kai-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kai-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kai-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kai-server.labels" -}}
helm.sh/chart: {{ include "kai-server.chart" . }}
{{ include "kai-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: kai
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kai-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kai-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kai-server.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
"true" when the catalog and the registry stay in SQLite, that is when no PostgreSQL
Secret is configured.
*/}}
{{- define "kai-server.usesSqlite" -}}
{{- if not .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/*
The most pods the release can run at once: the HPA's maximum when autoscaling is on,
else replicaCount.
*/}}
{{- define "kai-server.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.maxReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/*
The fewest pods the release runs when healthy: the HPA's minimum when autoscaling is on,
else replicaCount.
*/}}
{{- define "kai-server.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.minReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/*
The PersistentVolumeClaim of /data, empty when /data is an emptyDir.
*/}}
{{- define "kai-server.claimName" -}}
{{- if .Values.persistence.enabled }}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "kai-server.fullname" .)) }}
{{- end }}
{{- end }}

{{/*
KAI_ALLOWED_HOSTS: the Service's DNS names, each with and without the port, followed by
extraAllowedHosts.
*/}}
{{- define "kai-server.allowedHosts" -}}
{{- $name := include "kai-server.fullname" . }}
{{- $namespace := .Release.Namespace }}
{{- $port := int .Values.service.port }}
{{- $hosts := list }}
{{- range (list $name (printf "%s.%s" $name $namespace) (printf "%s.%s.svc" $name $namespace) (printf "%s.%s.svc.%s" $name $namespace .Values.clusterDomain)) }}
{{- $hosts = append $hosts . }}
{{- $hosts = append $hosts (printf "%s:%d" . $port) }}
{{- end }}
{{- range .Values.extraAllowedHosts }}
{{- $hosts = append $hosts (toString .) }}
{{- end }}
{{- $hosts | uniq | join "," }}
{{- end }}

{{/*
Seconds the kubelet waits between SIGTERM and SIGKILL: the preStop sleep, the server's
shutdown timeout rounded up to whole seconds, and 5 s for the process to exit.
*/}}
{{- define "kai-server.terminationGracePeriodSeconds" -}}
{{- $needed := add (int .Values.shutdown.preStopSleepSeconds) (div (add (int64 .Values.shutdown.timeoutMs) 999) 1000) }}
{{- with .Values.shutdown.terminationGracePeriodSeconds }}
{{- if le (int64 .) $needed }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds is %v but must exceed %d (shutdown.preStopSleepSeconds plus shutdown.timeoutMs in seconds), or the kubelet kills kai-server before it finishes its in-flight requests; raise it or leave it empty" . $needed) }}
{{- end }}
{{- int64 . }}
{{- else }}
{{- add $needed 5 }}
{{- end }}
{{- end }}

{{/*
Rejects values that would deploy a broken release, with a message that names the value
and the fix. Included by the Deployment, so every render runs it.
*/}}
{{- define "kai-server.validate" -}}
{{- $maxReplicas := include "kai-server.maxReplicas" . | int }}
{{- $minReplicas := include "kai-server.minReplicas" . | int }}
{{- if and (include "kai-server.usesSqlite" .) (gt $maxReplicas 1) }}
{{- if .Values.autoscaling.enabled }}
{{- fail (printf "autoscaling.maxReplicas is %d but kai-server keeps its data in SQLite, which allows one replica: set database.existingSecret to a Secret with KAI_DATABASE_URL (PostgreSQL), or set autoscaling.enabled=false and replicaCount=1" $maxReplicas) }}
{{- else }}
{{- fail (printf "replicaCount is %d but kai-server keeps its data in SQLite, which allows one replica: set database.existingSecret to a Secret with KAI_DATABASE_URL (PostgreSQL), or set replicaCount=1" $maxReplicas) }}
{{- end }}
{{- end }}
{{- if lt (int .Values.replicaCount) 0 }}
{{- fail (printf "replicaCount is %v but must be 0 or more" .Values.replicaCount) }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- if lt $minReplicas 1 }}
{{- fail (printf "autoscaling.minReplicas is %d but must be at least 1" $minReplicas) }}
{{- end }}
{{- if gt $minReplicas $maxReplicas }}
{{- fail (printf "autoscaling.minReplicas (%d) exceeds autoscaling.maxReplicas (%d)" $minReplicas $maxReplicas) }}
{{- end }}
{{- end }}
{{- if and .Values.persistence.enabled (not .Values.persistence.existingClaim) (gt $maxReplicas 1) (not (has "ReadWriteMany" .Values.persistence.accessModes)) }}
{{- fail (printf "persistence.accessModes is %v but up to %d replicas share the /data claim, which needs ReadWriteMany: set persistence.accessModes to [ReadWriteMany] with a StorageClass that provides it, or use persistence.existingClaim" .Values.persistence.accessModes $maxReplicas) }}
{{- end }}
{{- $chartSettings := dict
  "MCP_SERVER_PORT" "set containerPort instead"
  "KAI_BIND_ADDRESS" "keep the default, because the kubelet and the Service reach the pod on 0.0.0.0"
  "KAI_DATA_DIR" "configure the /data volume through persistence instead"
  "MODEL_DIR" "build an image with other models under /models instead"
  "KAI_ALLOWED_HOSTS" "set extraAllowedHosts instead"
  "KAI_ALLOWED_ORIGINS" "set allowedOrigins instead"
  "KAI_SHUTDOWN_TIMEOUT_MS" "set shutdown.timeoutMs instead" }}
{{- range $key, $value := .Values.config }}
{{- if has $key (list "JWT_SECRET" "KAI_DATABASE_URL" "PARAM_DB_CONNECTION") }}
{{- fail (printf "config.%s would put a secret into a ConfigMap: store it in a Secret and set auth.existingSecret (JWT_SECRET) or database.existingSecret (KAI_DATABASE_URL) instead" $key) }}
{{- end }}
{{- with get $chartSettings $key }}
{{- fail (printf "config.%s is managed by the chart. Remove it and %s." $key .) }}
{{- end }}
{{- end }}
{{- $storageType := .Values.config.PARAM_STORAGE_TYPE | default "" | toString | lower }}
{{- if and (eq $storageType "sqlite") .Values.database.existingSecret }}
{{- fail "config.PARAM_STORAGE_TYPE is sqlite but database.existingSecret gives a PostgreSQL KAI_DATABASE_URL: remove one of them" }}
{{- end }}
{{- if and (has $storageType (list "postgres" "postgresql")) (not .Values.database.existingSecret) }}
{{- fail (printf "config.PARAM_STORAGE_TYPE is %s but database.existingSecret is empty: set it to a Secret with KAI_DATABASE_URL" $storageType) }}
{{- end }}
{{- if lt (int64 .Values.shutdown.timeoutMs) 1 }}
{{- fail (printf "shutdown.timeoutMs is %v but must be at least 1" .Values.shutdown.timeoutMs) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if $pdb.enabled }}
{{- if and (ne (toString $pdb.minAvailable) "") (ne (toString $pdb.maxUnavailable) "") }}
{{- fail "podDisruptionBudget sets both minAvailable and maxUnavailable: set one and leave the other empty" }}
{{- end }}
{{- if and (eq (toString $pdb.minAvailable) "") (eq (toString $pdb.maxUnavailable) "") }}
{{- fail "podDisruptionBudget.enabled is true but neither minAvailable nor maxUnavailable is set: set one of them" }}
{{- end }}
{{- if and (regexMatch "^[0-9]+$" (toString $pdb.minAvailable)) (ge (int $pdb.minAvailable) $minReplicas) }}
{{- fail (printf "podDisruptionBudget.minAvailable is %d but the release runs %d pods, so no pod could ever be evicted and node drains would hang: lower it below %d" (int $pdb.minAvailable) $minReplicas $minReplicas) }}
{{- end }}
{{- end }}
{{- end }}
