{{/*
Names, labels and the image reference shared by every template of the chart.
Resource names are "<release>-scorer" (or fullnameOverride), so the default
release "vitals" gives the Service "vitals-scorer" that agents point at.
*/}}
{{- define "vitals.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vitals.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-scorer" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vitals.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vitals.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: scorer
{{- end -}}

{{- define "vitals.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vitals.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: vitals
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "vitals.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "vitals.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vitals.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vitals.secretName" -}}
{{- default (printf "%s-token" (include "vitals.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The score file exactly as mounted; its hash rolls the pod on change. */}}
{{- define "vitals.scoresJson" -}}
{{- .Values.scores | toPrettyJson -}}
{{- end -}}

{{/* Restricted-profile container securityContext (Pod Security "restricted"). */}}
{{- define "vitals.containerSecurityContext" -}}
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
{{- end -}}
