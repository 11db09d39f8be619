{{/*
Names and labels. Kubernetes names and label values are at most 63 characters, so every
helper truncates (and drops a trailing "-" that truncation may leave).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "driftloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
The fully qualified app name: fullnameOverride, else RELEASE-NAME (just RELEASE when the
release name already contains the chart name).
*/}}
{{- define "driftloop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
The full name with a suffix, still at most 63 characters:
  include "driftloop.suffixed" (list . "metrics")
*/}}
{{- define "driftloop.suffixed" -}}
{{- $ctx := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $base := include "driftloop.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base $suffix -}}
{{- end }}

{{/* chart-version, the value of the helm.sh/chart label. */}}
{{- define "driftloop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Labels of every object of the chart. */}}
{{- define "driftloop.labels" -}}
helm.sh/chart: {{ include "driftloop.chart" . }}
{{ include "driftloop.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: driftloop
{{- end }}

{{/* Labels that select the operator pod (immutable in a Deployment: keep them stable). */}}
{{- define "driftloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "driftloop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "driftloop.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/* The operator image reference: repository@digest or repository:tag. */}}
{{- define "driftloop.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{/* The runtime image reference. */}}
{{- define "driftloop.runtimeImage" -}}
{{- printf "%s:%s" .Values.runtime.image.repository (.Values.runtime.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{/* Namespaces where the chart's namespaced objects for workloads go (Roles, PVCs). */}}
{{- define "driftloop.workloadNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- .Values.watchNamespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end }}

{{/*
The rules on namespaced resources, shared by the ClusterRole (cluster-wide mode) and the
per-namespace Roles (watchNamespaces). One comment per rule says why it is needed.
*/}}
{{- define "driftloop.namespacedRules" -}}
# Watch the four kinds (the operator's cache); patch only lifts the finalizer that
# releases before 0.2 put on objects (kopf's), so that they can still be deleted.
- apiGroups: [driftloop.dev]
  resources: [datasets, trainingruns, modelversions, deployments]
  verbs: [get, list, watch, patch]
# Decisions and observations go to status only (the operator never writes a user's spec).
- apiGroups: [driftloop.dev]
  resources: [datasets/status, trainingruns/status, modelversions/status, deployments/status]
  verbs: [get, patch, update]
# Retraining creates TrainingRuns; a finished run registers its ModelVersion.
- apiGroups: [driftloop.dev]
  resources: [trainingruns, modelversions]
  verbs: [create]
# Training and data profiling run as batch/v1 Jobs. Training Jobs go with their
# TrainingRun (garbage collection); the operator deletes a Dataset's superseded
# profile Jobs once a newer profile is recorded in status, and a finished run's Job
# after finishedJobRetention. Watched (ours only, by label) to react to their status.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Training results come back in the Job pod's termination message; a pod that cannot
# run (unschedulable, image pull, missing Secret key, crash loop) is reported in Ready.
# Watched (ours only, by label).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# A driftloop Deployment is served by an apps/v1 Deployment (server-side applied, and
# watched by label), plus a second one for a canary, deleted when the canary ends; with
# promotion strategy shadow a candidate's own one, and its Service, deleted once it is
# judged) ...
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# ... behind a Service ...
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, delete]
# ... and, with spec.autoscaling, scaled by a HorizontalPodAutoscaler (server-side applied;
# deleted when autoscaling is removed).
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch, delete]
# Events on the objects (retraining triggers, rollbacks, pods that cannot run).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# A Job whose pods the API server refuses (a quota) says so only in its FailedCreate
# event: those are watched (selected by reason on the server).
- apiGroups: [""]
  resources: [events]
  verbs: [list, watch]
# Prometheus bearer-token and S3 credential Secrets a spec names; names are chosen by
# users, so this cannot be narrowed with resourceNames (see docs/security.md).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Check that the artifact PVC exists before starting workloads that mount it.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get]
{{- if .Values.prometheus.modelServiceMonitors }}
# Optional (prometheus.modelServiceMonitors): a ServiceMonitor per served model.
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, create]
{{- end }}
{{- end }}

{{/* The leader-election Lease, in the release namespace. */}}
{{- define "driftloop.leaseName" -}}
{{- default (include "driftloop.fullname" .) .Values.leaderElection.leaseName -}}
{{- end }}
