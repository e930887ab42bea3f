{{/*
Names. The full name is cut to 40 characters because worker pods are named
"<fullname>-worker-<index>-<suffix>" and their host names "<fullname>-worker-<index>" must stay
within the 63-character DNS label limit.
*/}}
{{- define "distclip.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "distclip.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "distclip.coordinatorName" -}}
{{- printf "%s-coordinator" (include "distclip.fullname" .) }}
{{- end }}

{{/* The worker Job; its pods' host names are "<this>-<index>". */}}
{{- define "distclip.workerName" -}}
{{- printf "%s-worker" (include "distclip.fullname" .) }}
{{- end }}

{{/* The headless Service of the workers, and the pods' subdomain (the two must be equal). */}}
{{- define "distclip.workerSubdomain" -}}
{{- printf "%s-workers" (include "distclip.fullname" .) }}
{{- end }}

{{- define "distclip.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-secret" (include "distclip.fullname" .)) }}
{{- end }}

{{- define "distclip.secretKey" -}}
{{- if .Values.secret.existingSecret }}{{ .Values.secret.existingSecretKey }}{{ else }}secret{{ end }}
{{- end }}

{{- define "distclip.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "distclip.fullname" .)) }}
{{- end }}

{{/* The run id: fixed per release, so that a restarted coordinator finds and resumes its own run. */}}
{{- define "distclip.runId" -}}
{{- .Values.run.id | default .Release.Name }}
{{- end }}

{{- define "distclip.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The coordinator's control-plane address as workers dial it. */}}
{{- define "distclip.coordinatorAddress" -}}
{{- printf "%s.%s.svc:%d" (include "distclip.coordinatorName" .) .Release.Namespace (int .Values.coordinator.port) }}
{{- end }}

{{/*
Labels. Selectors use only name, instance and component: the other labels change with every
chart or app version, and a Deployment's selector cannot change after it is created.
*/}}
{{- define "distclip.selectorLabels" -}}
app.kubernetes.io/name: {{ include "distclip.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "distclip.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "distclip.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: distclip
{{- end }}

{{/* Usage: include "distclip.componentSelectorLabels" (list . "worker") */}}
{{- define "distclip.componentSelectorLabels" -}}
{{ include "distclip.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "distclip.componentLabels" -}}
{{ include "distclip.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Paths inside the containers: the image keeps both programs in /app (cluster/Dockerfile.*). */}}
{{- define "distclip.secretDir" -}}/etc/distclip/secret{{- end }}
{{- define "distclip.configDir" -}}/etc/distclip/config{{- end }}
{{- define "distclip.checkpointDir" -}}{{ .Values.persistence.mountPath }}/checkpoints{{- end }}

{{/*
Environment every DistClip container gets: libtorch's OpenMP threads sleep when idle only if
OMP_WAIT_POLICY is set at process start. The thread count is the run's `threads` setting; its
default (0) makes each worker use its container's CPU limit (.NET reads the cgroup's quota).
Usage: include "distclip.threadEnv" "worker"
*/}}
{{- define "distclip.threadEnv" -}}
- name: OMP_WAIT_POLICY
  value: PASSIVE
{{- end }}

{{/* The run secret, as a read-only file (never an environment value or an argument). */}}
{{- define "distclip.secretVolume" -}}
- name: run-secret
  secret:
    secretName: {{ include "distclip.secretName" . }}
    defaultMode: 288 # 0440: owner and group (fsGroup) may read
    items:
      - key: {{ include "distclip.secretKey" . }}
        path: secret
{{- end }}

{{/*
The run's TLS Secret (tls.enabled): ca.crt, tls.crt and tls.key, read by --tls-dir.
*/}}
{{- define "distclip.tlsDir" -}}/etc/distclip/tls{{- end }}

{{- define "distclip.tlsVolume" -}}
{{- if not .Values.tls.secretName }}
{{- fail "tls.secretName: tls.enabled needs a kubernetes.io/tls Secret holding ca.crt, tls.crt and tls.key" }}
{{- end }}
- name: run-tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 288 # 0440: owner and group (fsGroup) may read
    items:
      - key: ca.crt
        path: ca.crt
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}

{{- define "distclip.tlsMount" -}}
- name: run-tls
  mountPath: {{ include "distclip.tlsDir" . }}
  readOnly: true
{{- end }}

{{- define "distclip.secretMount" -}}
- name: run-secret
  mountPath: {{ include "distclip.secretDir" . }}
  readOnly: true
{{- end }}

{{- define "distclip.dataVolume" -}}
- name: data
  persistentVolumeClaim:
    claimName: {{ include "distclip.claimName" . }}
{{- end }}

{{- define "distclip.dataMount" -}}
- name: data
  mountPath: {{ .Values.persistence.mountPath }}
{{- end }}
