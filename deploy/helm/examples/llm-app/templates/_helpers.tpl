{{/* Names and labels of the example app; the agent comes from the library. */}}
{{- define "llm-app.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-app.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "llm-app.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{ include "llm-app.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: {{ .root.Chart.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "llm-app.securityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The API's pod template, before the agent is added. */}}
{{- define "llm-app.api.pod" -}}
metadata:
  labels:
    {{- include "llm-app.labels" (dict "root" . "name" "support-bot") | nindent 4 }}
spec:
  automountServiceAccountToken: false
  containers:
    - name: api
      image: {{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: [serve, --port, {{ .Values.api.port | quote }}]
      ports:
        - {name: http, containerPort: {{ .Values.api.port }}}
      readinessProbe:
        httpGet: {path: /ready, port: http}
      livenessProbe:
        httpGet: {path: /live, port: http}
      resources:
        {{- toYaml .Values.api.resources | nindent 8 }}
      securityContext:
        {{- include "llm-app.securityContext" . | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
  volumes:
    - name: tmp
      emptyDir: {}
{{- end -}}

{{/* The evaluator's pod template, before the agent is added. */}}
{{- define "llm-app.evaluator.pod" -}}
metadata:
  labels:
    {{- include "llm-app.labels" (dict "root" . "name" "support-bot-evaluator") | nindent 4 }}
spec:
  automountServiceAccountToken: false
  containers:
    - name: evaluator
      image: {{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: [evaluate, --follow]
      env:
        - {name: EVAL_BATCH, value: "64"}
      resources:
        {{- toYaml .Values.evaluator.resources | nindent 8 }}
      securityContext:
        {{- include "llm-app.securityContext" . | nindent 8 }}
{{- end -}}
