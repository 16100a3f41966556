{{/* Only the template subset of tests/deploy/helm_render.py (see the chart README). */}}

{{- define "seawatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* release-chart, or the release name alone when it already is the chart's name; at most
52 characters: a StatefulSet's pods carry the label controller-revision-hash=<name>-<10
characters>, which must fit in 63. */}}
{{- define "seawatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else if eq .Release.Name (include "seawatch.name" .) }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "seawatch.name" .) | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The StatefulSet's governing (headless) Service. */}}
{{- define "seawatch.podsService" -}}
{{- printf "%s-pods" (include "seawatch.fullname" .) }}
{{- end }}

{{- define "seawatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "seawatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "seawatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "seawatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The settings file the ConfigMap holds (its checksum rolls the pods when it changes). */}}
{{- define "seawatch.settings" -}}
{{ toYaml .Values.settings }}
{{- end }}

{{/* The Secret holding the tokens: the chart's own or existingSecret. */}}
{{- define "seawatch.secretName" -}}
{{- default (include "seawatch.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Key in the Secret of the InfluxDB token, empty when there is none. */}}
{{- define "seawatch.influxTokenKey" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecretKeys.influxToken }}
{{- else if .Values.secrets.influxToken }}influx-token
{{- end }}
{{- end }}

{{/* Key in the Secret of the Kafka SASL password, empty when there is none. */}}
{{- define "seawatch.kafkaSaslPasswordKey" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecretKeys.kafkaSaslPassword }}
{{- else if .Values.secrets.kafkaSaslPassword }}kafka-sasl-password
{{- end }}
{{- end }}

{{/* Where the Secret's files are mounted. */}}
{{- define "seawatch.secretDir" -}}
/etc/seawatch/secrets
{{- end }}

{{/* repository:tag; the tag defaults to <appVersion>-cpu, or -gpu with gpu.enabled. */}}
{{- define "seawatch.image" -}}
{{- if .Values.image.tag }}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- else if .Values.gpu.enabled }}
{{- printf "%s:%s-gpu" .Values.image.repository .Chart.AppVersion }}
{{- else }}
{{- printf "%s:%s-cpu" .Values.image.repository .Chart.AppVersion }}
{{- end }}
{{- end }}
