{{/* Names, labels and the values every template derives from the same inputs. */}}

{{- define "orgplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "orgplane.fullname" -}}
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

{{- define "orgplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "orgplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orgplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "orgplane.labels" -}}
helm.sh/chart: {{ include "orgplane.chart" . }}
{{ include "orgplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: orgplane
{{- end }}

{{/* The control-plane pods (not the migration job) carry this component label. */}}
{{- define "orgplane.controlPlaneSelectorLabels" -}}
{{ include "orgplane.selectorLabels" . }}
app.kubernetes.io/component: control-plane
{{- end }}

{{- define "orgplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "orgplane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "orgplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "orgplane.instanceImage" -}}
{{- $image := .Values.provisioner.instanceImage }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}

{{/* The Secret the control plane reads its ORGPLANE_* secrets from. */}}
{{- define "orgplane.backupsClaim" -}}
{{- default (printf "%s-backups" (include "orgplane.fullname" .)) .Values.backups.existingClaim }}
{{- end }}

{{- define "orgplane.secretName" -}}
{{- default (include "orgplane.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "orgplane.host" -}}
{{- default .Values.baseDomain .Values.expose.host }}
{{- end }}

{{- define "orgplane.tlsEnabled" -}}
{{- if or (and (eq .Values.expose.kind "ingress") .Values.expose.ingress.tls.enabled) (and (eq .Values.expose.kind "ingressroute") .Values.expose.ingressRoute.tls.enabled) }}true{{ end }}
{{- end }}

{{- define "orgplane.publicUrl" -}}
{{- if .Values.publicUrl }}
{{- .Values.publicUrl | trimSuffix "/" }}
{{- else }}
{{- printf "%s://%s" (ternary "https" "http" (eq (include "orgplane.tlsEnabled" .) "true")) (include "orgplane.host" .) }}
{{- end }}
{{- end }}

{{/* How org instances reach the control plane: through the Service, never the public URL. */}}
{{- define "orgplane.internalUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "orgplane.fullname" .) .Release.Namespace .Values.service.port }}
{{- end }}

{{- define "orgplane.orgsNamespace" -}}
{{- default .Release.Namespace .Values.provisioner.kubernetes.namespace }}
{{- end }}

{{/* Cluster-scoped names carry the namespace: two releases of the same name must not collide. */}}
{{- define "orgplane.clusterRoleName" -}}
{{- printf "%s-%s" .Release.Namespace (include "orgplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "orgplane.rbacEnabled" -}}
{{- if and .Values.rbac.create (eq .Values.provisioner.name "kubernetes") }}true{{ end }}
{{- end }}

{{- define "orgplane.deploymentId" -}}
{{- default (printf "%s.%s" .Release.Namespace .Release.Name) .Values.deploymentId | trunc 63 | trimSuffix "-" | trimSuffix "." }}
{{- end }}

{{/*
The kubernetes provisioner's RBAC rules, from what it does (provisioners/kubernetes): it reads,
lists, creates, server-side applies or merge-patches, and deletes each org's Secret,
PersistentVolumeClaim, Service, Deployment and route (IngressRoute or Ingress) and, per-org,
its ResourceQuota and NetworkPolicy; removal lists every one of those kinds, so the kinds this
configuration never creates still get list and delete. tests/deploy/test_chart_rbac.py
holds the same table; change both together.
*/}}
{{- define "orgplane.orgObjectRules" -}}
{{- $manage := list "get" "list" "create" "patch" "delete" }}
{{- $sweep := list "list" "delete" }}
{{- $k8s := .Values.provisioner.kubernetes }}
{{- $perOrg := eq $k8s.namespaceMode "per-org" }}
- apiGroups: [""]
  resources: ["secrets", "persistentvolumeclaims", "services"]
  verbs: {{ toJson $manage }}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: {{ toJson $manage }}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["resourcequotas"]
  verbs: {{ toJson (ternary $manage $sweep $perOrg) }}
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: {{ toJson (ternary $manage $sweep $perOrg) }}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: {{ toJson (ternary $manage $sweep (eq $k8s.ingress "ingress")) }}
- apiGroups: ["traefik.io"]
  resources: ["ingressroutes"]
  verbs: {{ toJson (ternary $manage $sweep (eq $k8s.ingress "ingressroute")) }}
{{- if $perOrg }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
{{- end }}

{{/* The pod security settings the control plane and the migration job share. */}}
{{- define "orgplane.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
