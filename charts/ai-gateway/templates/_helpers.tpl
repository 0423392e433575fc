{{/* The prefix of every object name: the release name unless overridden. */}}
{{- define "ai-gateway.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on everything the chart creates. `app.kubernetes.io/name` is set per component:
     `ai-gateway` is left to the data-plane Services the operator creates, which the
     ServiceMonitor selects. */}}
{{- define "ai-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ai-gateway
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "ai-gateway.operator.selectorLabels" -}}
app.kubernetes.io/name: ai-gateway-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ai-gateway.redis.selectorLabels" -}}
app.kubernetes.io/name: ai-gateway-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ai-gateway.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "ai-gateway.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ai-gateway.operator.image" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{- define "ai-gateway.dataplane.image" -}}
{{- printf "%s:%s" .Values.dataplane.image.repository (default .Chart.AppVersion .Values.dataplane.image.tag) -}}
{{- end -}}

{{- define "ai-gateway.redis.url" -}}
{{- printf "redis://%s-redis:6379/0" (include "ai-gateway.fullname" .) -}}
{{- end -}}
