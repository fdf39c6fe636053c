{{/* The chart's name, or nameOverride. */}}
{{- define "relay-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of every object: fullnameOverride, else the release name (plus the chart's name
when the release name does not already contain it). */}}
{{- define "relay-agent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "relay-agent.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "relay-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "relay-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "relay-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "relay-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: relay-tls
relaytls.dev/cluster: {{ .Values.cluster | quote }}
{{- end -}}

{{- define "relay-agent.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "relay-agent.serviceAccountName" -}}
{{- if .Values.glooAgent.serviceAccount.create -}}
{{- default (include "relay-agent.fullname" .) .Values.glooAgent.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.glooAgent.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The relay server's address with its scheme: https://host:port. */}}
{{- define "relay-agent.relayAddress" -}}
{{- $address := required "glooAgent.relay.serverAddress is required: the relay server's host:port, e.g. relay-issuer-relay.gloo-mesh.svc:9900" .Values.glooAgent.relay.serverAddress -}}
{{- if hasPrefix "https://" $address -}}
{{- $address -}}
{{- else -}}
{{- printf "https://%s" $address -}}
{{- end -}}
{{- end -}}

{{/* A Go duration ("8760h", "1h30m", "0.5s") in nanoseconds, as Go's time.ParseDuration
reads it: whole numbers exactly, fractions through float64 as Go does, so
"0.006666666666666667h" is 24s. values.schema.json checks the syntax. */}}
{{- define "relay-agent.durationNanos" -}}
{{- $units := dict "h" 3600000000000 "m" 60000000000 "s" 1000000000 "ms" 1000000 "us" 1000 "µs" 1000 "ns" 1 -}}
{{- $total := 0 -}}
{{- range regexFindAll "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h)" . -1 -}}
{{- $unit := regexFind "(ns|us|µs|ms|s|m|h)$" . -}}
{{- $number := trimSuffix $unit . -}}
{{- $parts := splitList "." $number -}}
{{- $scale := index $units $unit | int64 -}}
{{- $whole := index $parts 0 | default "0" -}}
{{- $total = add $total (mul (atoi $whole) $scale) -}}
{{- if gt (len $parts) 1 -}}
{{- $fraction := index $parts 1 | trunc 18 -}}
{{- if $fraction -}}
{{- $denominator := float64 (printf "1e%d" (len $fraction)) -}}
{{- $total = add $total (int64 (mulf (float64 $fraction) (divf $scale $denominator))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* renewBefore from glooAgent.relay.clientTlsSecretRotationGracePeriodRatio ("" = 0.1) and
certificate.duration: ratio × duration, truncated to whole seconds. Computed in integers from
the ratio rounded to 9 decimals, so 0.1 × 8760h is exactly 3153600s and 0.29 × 8760h exactly
9145440s (float arithmetic gives 9145439.999…). values.schema.json admits numbers from 0.0001
to 0.999999999 and decimal strings; the same bounds are checked here for strings. */}}
{{- define "relay-agent.renewBefore" -}}
{{- $raw := .Values.glooAgent.relay.clientTlsSecretRotationGracePeriodRatio -}}
{{- $ratio := 0.1 -}}
{{- if not (and (kindIs "string" $raw) (eq $raw "")) -}}
{{- $ratio = float64 $raw -}}
{{- end -}}
{{- if or (lt $ratio 0.0001) (gt $ratio 0.999999999) -}}
{{- fail (printf "glooAgent.relay.clientTlsSecretRotationGracePeriodRatio must be between 0 and 1 exclusive, from 0.0001 to 0.999999999, or \"\" for the default 0.1; got %v" $raw) -}}
{{- end -}}
{{- $nanos := include "relay-agent.durationNanos" .Values.certificate.duration | atoi -}}
{{- if le $nanos 0 -}}
{{- fail (printf "certificate.duration must be a positive Go duration such as 8760h; got %q" .Values.certificate.duration) -}}
{{- end -}}
{{- /* floor(N × nanos / 1e18) with N = ratio × 1e9, without overflowing int64. */ -}}
{{- $n := index (splitList "." (printf "%.9f" $ratio)) 1 | atoi -}}
{{- $wholeSeconds := div $nanos 1000000000 -}}
{{- $restNanos := mod $nanos 1000000000 -}}
{{- $product := mul $n $wholeSeconds -}}
{{- $seconds := add (div $product 1000000000) (div (add (mul (mod $product 1000000000) 1000000000) (mul $n $restNanos)) 1000000000000000000) -}}
{{- if le (int64 $seconds) 0 -}}
{{- fail (printf "renewBefore = %v × %s is under a second; raise glooAgent.relay.clientTlsSecretRotationGracePeriodRatio or certificate.duration" $ratio .Values.certificate.duration) -}}
{{- end -}}
{{- printf "%ds" (int64 $seconds) -}}
{{- end -}}
