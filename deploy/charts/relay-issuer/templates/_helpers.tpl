{{/* The chart's name, or nameOverride. */}}
{{- define "relay-issuer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object's name: fullnameOverride, else the release name (plus the
chart's name when the release name does not already contain it). Short enough for the
longest suffix ("-controller-metrics"). */}}
{{- define "relay-issuer.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 44 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "relay-issuer.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 44 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 44 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "relay-issuer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "relay-issuer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: relay-tls
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "controller"). */}}
{{- define "relay-issuer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "relay-issuer.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every label of one component's objects; same argument as selectorLabels. */}}
{{- define "relay-issuer.componentLabels" -}}
{{ include "relay-issuer.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image reference: repository with the digest, else the tag (default appVersion). */}}
{{- define "relay-issuer.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* ServiceAccount names. */}}
{{- define "relay-issuer.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{- default (printf "%s-controller" (include "relay-issuer.fullname" .)) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "relay-issuer.server.serviceAccountName" -}}
{{- if .Values.server.serviceAccount.create -}}
{{- default (printf "%s-server" (include "relay-issuer.fullname" .)) .Values.server.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.server.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The relay Service's name. */}}
{{- define "relay-issuer.server.serviceName" -}}
{{- default (printf "%s-relay" (include "relay-issuer.fullname" .)) .Values.server.service.name -}}
{{- end -}}

{{/* RBAC rules from files/rbac.yaml: call with (dict "rules" <list> "secretNames" <list>).
A rule with `secretNames: true` gets resourceNames = secretNames. */}}
{{- define "relay-issuer.rules" -}}
{{- $secretNames := .secretNames -}}
{{- range .rules }}
{{- $rule := omit . "secretNames" }}
{{- if .secretNames }}
{{- $_ := set $rule "resourceNames" $secretNames }}
{{- end }}
- {{ toYaml $rule | nindent 2 | trim }}
{{- end }}
{{- end -}}

{{/* The rules of files/rbac.yaml. */}}
{{- define "relay-issuer.rbac" -}}
{{- .Files.Get "files/rbac.yaml" -}}
{{- end -}}

{{/* The environment from the downward API: the pod's namespace and name. */}}
{{- define "relay-issuer.downwardEnv" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end -}}

{{/* Liveness and readiness probes on the admin port; call with the component's values. */}}
{{- define "relay-issuer.probes" -}}
livenessProbe:
  httpGet:
    path: /live
    port: admin
  initialDelaySeconds: {{ .livenessProbe.initialDelaySeconds }}
  periodSeconds: {{ .livenessProbe.periodSeconds }}
  timeoutSeconds: {{ .livenessProbe.timeoutSeconds }}
  failureThreshold: {{ .livenessProbe.failureThreshold }}
readinessProbe:
  httpGet:
    path: /ready
    port: admin
  initialDelaySeconds: {{ .readinessProbe.initialDelaySeconds }}
  periodSeconds: {{ .readinessProbe.periodSeconds }}
  timeoutSeconds: {{ .readinessProbe.timeoutSeconds }}
  failureThreshold: {{ .readinessProbe.failureThreshold }}
{{- end -}}

{{/* A PodDisruptionBudget; call with (dict "root" $ "component" <name> "pdb" <values>). */}}
{{- define "relay-issuer.pdb" -}}
{{- $pdb := .pdb -}}
{{- if and (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) -}}
{{- fail (printf "%s.podDisruptionBudget: set minAvailable or maxUnavailable, not both" .component) -}}
{{- end -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "relay-issuer.fullname" .root }}-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "relay-issuer.componentLabels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else if not (kindIs "invalid" $pdb.maxUnavailable) }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- else }}
  {{- fail (printf "%s.podDisruptionBudget: set minAvailable or maxUnavailable" .component) }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "relay-issuer.selectorLabels" . | nindent 6 }}
{{- end -}}
