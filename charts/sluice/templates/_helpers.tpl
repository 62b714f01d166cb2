{{/*
The flags of `sluice operator` that this chart passes only once sluice has them. Each is `true` when the sluice of
this chart's appVersion accepts it (`node src/main.ts help`); the values that need a missing flag are refused
(sluice.validate), so today's binary is never given an unknown flag. test/integration/helm.test.ts fails when this
list and `sluice help` disagree: flip the entry (and check the templates that use it) when the flag lands.
*/}}
{{- define "sluice.operatorFlags" -}}
leader-elect: true
metrics-port: true
{{- end }}

{{/* Helm's standard labels, on every object (not in selectors). */}}
{{- define "sluice.standardLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* The labels of deploy/'s objects, plus Helm's. */}}
{{- define "sluice.labels" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/part-of: sluice
{{ include "sluice.standardLabels" . }}
{{- end }}

{{/* The labels of deploy/'s operator objects (Deployment, Service, the operator's ClusterRoles), plus Helm's. */}}
{{- define "sluice.operatorLabels" -}}
{{ include "sluice.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The Deployment's selector and the Service's: as in deploy/ (immutable once installed; no release label). */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/component: operator
{{- end }}

{{- define "sluice.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The Service the APIService points at and the serving certificate names. */}}
{{- define "sluice.serviceName" -}}sluice-metrics{{- end }}

{{/* The Lease the replicas elect a leader on (src/main.ts LEASE_NAME). */}}
{{- define "sluice.leaseName" -}}sluice-operator{{- end }}

{{/*
Refuses values that today's sluice cannot honour, with the reason; rendered at the top of deployment.yaml, so
`helm template`, `helm install` and `helm lint` all stop on them.
*/}}
{{- define "sluice.validate" -}}
{{- $flags := include "sluice.operatorFlags" . | fromYaml -}}
{{- if not (has .Values.certificates.mode (list "self-managed" "cert-manager")) -}}
{{- fail (printf "certificates.mode=%q: must be self-managed or cert-manager" .Values.certificates.mode) -}}
{{- end -}}
{{- if and .Values.leaderElection.enabled (not (index $flags "leader-elect")) -}}
{{- fail (printf "leaderElection.enabled=true needs a sluice with the --leader-elect flag; sluice %s has no leader election: leave it false and replicaCount at 1" .Chart.AppVersion) -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicaCount=%d needs leaderElection.enabled=true: without leader election every replica would write the same HPAs, statuses and /scale subresources" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and .Values.proxy.to (not (hasPrefix "https://" .Values.proxy.to)) -}}
{{- fail (printf "proxy.to=%q: must be the other adapter's https://host[:port] (docs/deploy.md#proxy-mode)" .Values.proxy.to) -}}
{{- end -}}
{{- if and .Values.proxy.to (not .Values.proxy.secretName) -}}
{{- fail "proxy.to needs proxy.secretName: a Secret in the release namespace with ca.crt (the other adapter's serving CA), tls.crt and tls.key (sluice's client certificate for it; docs/deploy.md#proxy-mode)" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not (index $flags "metrics-port")) -}}
{{- fail (printf "serviceMonitor.enabled=true needs a sluice with the --metrics-port flag: sluice %s serves no Prometheus metrics of its own yet" .Chart.AppVersion) -}}
{{- end -}}
{{- end }}
