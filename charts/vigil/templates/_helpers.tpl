{{/*
vigil.name is the chart name, or nameOverride.
*/}}
{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
vigil.fullname prefixes every object: "<release>-vigil", or the release name
alone when it already contains the chart name. Truncated to 63 characters
because some Kubernetes name fields are limited to a DNS label.
*/}}
{{- define "vigil.fullname" -}}
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

{{/*
vigil.labels are the common labels of every object.
*/}}
{{- define "vigil.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- end }}

{{/*
vigil.selectorLabels select one component's pods; pass a dict with "ctx" (the
root context) and "component" (sensor or backend). Selectors are immutable,
so nothing that changes between releases may appear here.
*/}}
{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
vigil.image renders "repository:tag" for an image block, the tag defaulting
to the chart's appVersion.
*/}}
{{- define "vigil.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/*
vigil.tokenSecretName is the Secret holding "sensor-token" and "api-token".
*/}}
{{- define "vigil.tokenSecretName" -}}
{{- default (printf "%s-tokens" (include "vigil.fullname" .)) .Values.tokens.existingSecret }}
{{- end }}

{{/*
vigil.tlsSecretName is the Secret holding tls.crt, tls.key and ca.crt.
*/}}
{{- define "vigil.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "vigil.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{/*
vigil.backendService is the backend Service's name; the generated server
certificate is issued for its DNS names.
*/}}
{{- define "vigil.backendService" -}}
{{- printf "%s-backend" (include "vigil.fullname" .) }}
{{- end }}

{{/*
vigil.backendAddress is host:port of the backend's gRPC port as sensors dial
it: the Service's namespace-qualified name, which the certificate covers.
*/}}
{{- define "vigil.backendAddress" -}}
{{- printf "%s.%s.svc:%d" (include "vigil.backendService" .) .Release.Namespace (int .Values.backend.grpcPort) }}
{{- end }}

{{/*
vigil.postgresSecretName is the Secret holding the PostgreSQL URL.
*/}}
{{- define "vigil.postgresSecretName" -}}
{{- default (printf "%s-postgres" (include "vigil.fullname" .)) .Values.backend.store.postgres.existingSecret }}
{{- end }}

{{/*
vigil.validate stops rendering on combinations the schema cannot express.
*/}}
{{- define "vigil.validate" -}}
{{- if and (eq .Values.backend.store.type "sqlite") (gt (int .Values.backend.replicas) 1) }}
{{- fail "backend.replicas > 1 needs backend.store.type=postgres: SQLite allows one writer" }}
{{- end }}
{{- if and (eq .Values.backend.store.type "postgres") (not .Values.backend.store.postgres.existingSecret) (not .Values.backend.store.postgres.url) }}
{{- fail "backend.store.type=postgres needs backend.store.postgres.existingSecret or backend.store.postgres.url" }}
{{- end }}
{{- end }}
