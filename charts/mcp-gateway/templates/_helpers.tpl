{{/* Chart name, overridable; trimmed to the 63-character label limit. */}}
{{- define "mcp-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified release name. When the release name already contains the chart
name it is used as is, so `helm install mcp-gateway ...` gives `mcp-gateway`
rather than `mcp-gateway-mcp-gateway`.
*/}}
{{- define "mcp-gateway.fullname" -}}
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

{{- define "mcp-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Per-component object names, each leaving room for suffixes Kubernetes adds. */}}
{{- define "mcp-gateway.gateway.fullname" -}}
{{- printf "%s-gateway" (include "mcp-gateway.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "mcp-gateway.operator.fullname" -}}
{{- printf "%s-operator" (include "mcp-gateway.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels on every object. */}}
{{- define "mcp-gateway.labels" -}}
helm.sh/chart: {{ include "mcp-gateway.chart" . }}
app.kubernetes.io/name: {{ include "mcp-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mcp-gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades, so never the version. Takes (dict "ctx" $ "component" "gateway"). */}}
{{- define "mcp-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-gateway.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mcp-gateway.componentLabels" -}}
{{ include "mcp-gateway.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Image reference. A digest, when set, wins over the tag so deployments are
immutable; the tag defaults to the chart's appVersion.
Takes (dict "ctx" $ "image" .Values.gateway.image).
*/}}
{{- define "mcp-gateway.image" -}}
{{- $registry := .ctx.Values.global.imageRegistry | default .image.registry -}}
{{- $repo := .image.repository -}}
{{- if $registry }}{{ $repo = printf "%s/%s" $registry .image.repository }}{{ end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{- define "mcp-gateway.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "mcp-gateway.gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mcp-gateway.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "mcp-gateway.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMap the operator renders and every gateway replica watches. */}}
{{- define "mcp-gateway.routingConfigMapName" -}}
{{- default (printf "%s-routing" (include "mcp-gateway.fullname" .)) .Values.routing.configMapName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Secret the chart generates for the gateway's own secrets (admin token, API key pepper). */}}
{{- define "mcp-gateway.generatedSecretName" -}}
{{- include "mcp-gateway.gateway.fullname" . }}
{{- end }}

{{/*
secretKeyRef for one gateway secret: the user's existing Secret when named, else
the generated one. Takes (dict "ctx" $ "ref" .Values.gateway.adminToken "key" "admin-token").
*/}}
{{- define "mcp-gateway.secretKeyRef" -}}
{{- if .ref.existingSecret -}}
name: {{ .ref.existingSecret }}
key: {{ .ref.existingSecretKey }}
{{- else -}}
name: {{ include "mcp-gateway.generatedSecretName" .ctx }}
key: {{ .key }}
{{- end }}
{{- end }}

{{/* Operator command-line arguments (see `mcp-operator --help`). */}}
{{- define "mcp-gateway.operator.args" -}}
- --routing-configmap={{ .Release.Namespace }}/{{ include "mcp-gateway.routingConfigMapName" . }}
- --adapter-image={{ include "mcp-gateway.image" (dict "ctx" $ "image" .Values.adapter.image) }}
- --image-pull-policy={{ .Values.adapter.image.pullPolicy }}
- --cluster-domain={{ .Values.clusterDomain }}
- --gateway-url={{ include "mcp-gateway.gatewayUrl" . }}
- --lease={{ .Release.Namespace }}/{{ include "mcp-gateway.operator.fullname" . }}
- --owner-deployment={{ include "mcp-gateway.operator.fullname" . }}
- --health-port={{ .Values.operator.healthPort }}
- --log-level={{ .Values.operator.logLevel }}
{{- with .Values.gateway.tracing.endpoint }}
{{- /* The adapters the operator runs export to the same place: one trace from gateway to upstream. */}}
- --adapter-otlp-endpoint={{ . | trimSuffix "/" }}
- --adapter-trace-sampling-ratio={{ $.Values.gateway.tracing.samplingRatio }}
{{- end }}
- --gateway-namespace={{ .Release.Namespace }}
- --gateway-pod-selector={{ include "mcp-gateway.selectorArg" (dict "ctx" $ "component" "gateway") }}
- --operator-namespace={{ .Release.Namespace }}
- --operator-pod-selector={{ include "mcp-gateway.selectorArg" (dict "ctx" $ "component" "operator") }}
{{- with .Values.adapter.metricsFrom }}
{{- /* Scrapers let through each adapter's NetworkPolicy (adapter.podMonitor scrapes /metrics on the MCP port). */}}
- --adapter-metrics-from={{ toJson . }}
{{- end }}
{{- range .Values.operator.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- /* Gateway-wide routing settings: the operator writes the routing config's gateway section. */}}
{{- $routing := dict }}
{{- if .Values.gateway.allowPrivateJwks }}{{ $_ := set $routing "allowPrivateJwks" true }}{{ end }}
{{- if ne .Values.gateway.limitsCommit "async" }}{{ $_ := set $routing "limitsCommit" .Values.gateway.limitsCommit }}{{ end }}
{{- if ne (int .Values.gateway.maxAdminRequestBytes) 65536 }}{{ $_ := set $routing "maxAdminRequestBytes" (int .Values.gateway.maxAdminRequestBytes) }}{{ end }}
{{- with (.Values.gateway.connections | default dict) }}
{{- if .userSignIn }}
{{- $connections := dict "userSignIn" .userSignIn }}
{{- if and .linkSeconds (ne (int .linkSeconds) 900) }}{{ $_ := set $connections "linkSeconds" (int .linkSeconds) }}{{ end }}
{{- $_ := set $routing "connections" $connections }}
{{- end }}
{{- end }}
{{- if $routing }}
- {{ printf "--gateway-settings=%s" (toJson $routing) | squote }}
{{- end }}
{{- end }}

{{/* Base URL clients use, shown in Profile status: operator.gatewayUrl, gateway.publicUrl, else the Service's. */}}
{{- define "mcp-gateway.gatewayUrl" -}}
{{- if .Values.operator.gatewayUrl }}
{{- .Values.operator.gatewayUrl | trimSuffix "/" }}
{{- else if .Values.gateway.publicUrl }}
{{- .Values.gateway.publicUrl | trimSuffix "/" }}
{{- else }}
{{- printf "http://%s.%s.svc.%s:%v" (include "mcp-gateway.gateway.fullname" .) .Release.Namespace .Values.clusterDomain .Values.gateway.service.port }}
{{- end }}
{{- end }}

{{/*
Operator permissions. This chart is their only source: the operator's tests
render these templates (helm template) and run the operator bound to exactly
what they produce, cluster-wide and namespaced.

"true" when operator.watchNamespaces lists plain names only: then the workload
verbs go into one Role per listed namespace instead of the ClusterRole. Globs
(team-*) cannot be expressed in RBAC, so they keep the cluster-wide rules.
*/}}
{{- define "mcp-gateway.operator.namespacedRbac" -}}
{{- $plain := gt (len .Values.operator.watchNamespaces) 0 }}
{{- range .Values.operator.watchNamespaces }}
{{- if regexMatch "[*?\\[]" . }}{{ $plain = false }}{{ end }}
{{- end }}
{{- if $plain }}true{{ end }}
{{- end }}

{{/* Always cluster-wide: Tenants are cluster-scoped; kopf discovers CRDs and follows namespaces. */}}
{{- define "mcp-gateway.operator.clusterRules" -}}
- apiGroups: [mcpgateway.dev]
  resources: [tenants]
  verbs: [get, list, watch]
- apiGroups: [mcpgateway.dev]
  resources: [tenants/status]
  verbs: [get, patch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{/*
Where Profiles and Upstreams live: read them, write only their status (no
finalizers, no annotations); server-side apply the adapter workloads (patch,
plus create for the first apply). No delete: the garbage collector removes
owned objects. No Secrets: Upstreams only reference them.
*/}}
{{- define "mcp-gateway.operator.workloadRules" -}}
- apiGroups: [mcpgateway.dev]
  resources: [profiles, upstreams]
  verbs: [get, list, watch]
- apiGroups: [mcpgateway.dev]
  resources: [profiles/status, upstreams/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* The operator's own namespace: its Lease and the routing ConfigMap. */}}
{{- define "mcp-gateway.operator.homeRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [{{ include "mcp-gateway.routingConfigMapName" . }}]
  verbs: [get, create, patch]
# Its own Deployment, read once for its uid: the owner of the Lease and the routing ConfigMap,
# so that helm uninstall garbage-collects both.
- apiGroups: [apps]
  resources: [deployments]
  resourceNames: [{{ include "mcp-gateway.operator.fullname" . }}]
  verbs: [get]
{{- end }}

{{/* Selector labels as a k=v,... flag value. Takes (dict "ctx" $ "component" "gateway"). */}}
{{- define "mcp-gateway.selectorArg" -}}
{{- $labels := include "mcp-gateway.selectorLabels" . | fromYaml }}
{{- $pairs := list }}
{{- range $key := keys $labels | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $labels $key)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* Marks the gateway's metrics Service, which the ServiceMonitor selects (not the main one). */}}
{{- define "mcp-gateway.metricsLabel" -}}
mcpgateway.dev/metrics: "true"
{{- end }}
