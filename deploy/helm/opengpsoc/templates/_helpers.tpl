{{/*
Shared named templates. Every object of every component is rendered by looping over
.Values.components through these, so adding a service is one values entry.
*/}}

{{- define "gpsoc.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Release-scoped name of a component, e.g. <release>-<component>. */}}
{{- define "gpsoc.componentName" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- if contains $root.Chart.Name $root.Release.Name -}}
{{- $name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" $root.Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one workload: <component>-<process>, e.g. <release>-<component>-relay. */}}
{{- define "gpsoc.workloadName" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}{{- $process := index . 2 -}}
{{- printf "%s-%s" (include "gpsoc.componentName" (list $root $name)) $process | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The effective settings of one component: `default` deep-merged with the component's
entry. Processes are merged one by one (default.processes.<type> under the component's
own), so a component runs exactly the processes it lists. Returned as YAML.
Usage: $c := include "gpsoc.component" (list $ $name $raw) | fromYaml
*/}}
{{- define "gpsoc.component" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}{{- $raw := index . 2 | default dict -}}
{{- $c := mustMergeOverwrite (omit (deepCopy $root.Values.default) "processes") (omit (deepCopy $raw) "processes") -}}
{{- $processes := dict -}}
{{- range $type, $own := ($raw.processes | default dict) -}}
{{- $base := deepCopy (get $root.Values.default.processes $type | default dict) -}}
{{- $_ := set $processes $type (mustMergeOverwrite $base (deepCopy ($own | default dict))) -}}
{{- end -}}
{{- $_ := set $c "processes" $processes -}}
{{- $_ := set $c "name" $name -}}
{{- $_ := set $c "fullname" (include "gpsoc.componentName" (list $root $name)) -}}
{{- $_ := set $c "metricPrefix" ($name | replace "-" "_") -}}
{{- toYaml $c -}}
{{- end -}}

{{/* Enabled component names, sorted (so renders are stable). */}}
{{- define "gpsoc.enabledComponents" -}}
{{- $names := list -}}
{{- range $name, $raw := .Values.components -}}
{{- if and $raw (ne (toString $raw.enabled) "false") -}}{{- $names = append $names $name -}}{{- end -}}
{{- end -}}
{{- toYaml (sortAlpha $names) -}}
{{- end -}}

{{- define "gpsoc.labels" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
helm.sh/chart: {{ include "gpsoc.chart" $root }}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: opengpsoc
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ $name }}
{{- end -}}

{{/* Selector labels of one workload (component + process). */}}
{{- define "gpsoc.selectorLabels" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}{{- $process := index . 2 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $name }}
opengpsoc.org/process: {{ $process }}
{{- end -}}

{{/* registry/repository:tag[@digest] of a component; fails on an unpinned tag. */}}
{{- define "gpsoc.image" -}}
{{- $root := index . 0 -}}{{- $c := index . 1 -}}
{{- $tag := $c.image.tag | default $root.Chart.AppVersion | toString -}}
{{- if or (eq $tag "latest") (eq $tag "") -}}
{{- fail (printf "components.%s.image.tag must be a pinned version, not %q" $c.name $tag) -}}
{{- end -}}
{{- $ref := printf "%s/%s:%s" $root.Values.global.imageRegistry $c.image.repository $tag -}}
{{- if $c.image.digest -}}{{- $ref = printf "%s@%s" $ref $c.image.digest -}}{{- end -}}
{{- $ref -}}
{{- end -}}

{{- define "gpsoc.secretName" -}}
{{- $c := index . 0 -}}{{- $template := index . 1 -}}
{{- $template | replace "{{ component }}" $c.name -}}
{{- end -}}

{{/* Environment of one process: ConfigMap, then Secret references (never values). */}}
{{- define "gpsoc.env" -}}
{{- $root := index . 0 -}}{{- $c := index . 1 -}}{{- $process := index . 2 -}}
envFrom:
  - configMapRef:
      name: {{ $c.fullname }}
{{- if $root.Values.kafka.existingSecret }}
  - secretRef:
      name: {{ $root.Values.kafka.existingSecret }}
{{- end }}
env:
  - name: GPSOC_PROCESS
    value: {{ $process }}
{{- if ne $process "migrate" }}
  - name: JWT_JWKS_URL
    valueFrom:
      secretKeyRef:
        name: {{ $root.Values.auth.existingSecret }}
        key: {{ $root.Values.auth.jwksUrlKey }}
{{- end }}
{{- if $c.database.enabled }}
{{- if eq $process "migrate" }}
  - name: MIGRATION_DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "gpsoc.secretName" (list $c $c.database.existingSecret) }}
        key: {{ $c.database.ownerUrlKey }}
{{- else }}
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "gpsoc.secretName" (list $c $c.database.existingSecret) }}
        key: {{ $c.database.appUrlKey }}
{{- end }}
{{- end }}
{{- if and (has $process (list "relay" "consumer")) $c.workerHealthPort }}
  - name: HEALTH_PORT
    value: {{ $c.workerHealthPort | quote }}
{{- end }}
  - name: K8S_POD_NAME
    valueFrom: {fieldRef: {fieldPath: metadata.name}}
  - name: OTEL_RESOURCE_ATTRIBUTES
    value: "service.namespace=opengpsoc,deployment.environment={{ $root.Release.Namespace }},k8s.pod.name=$(K8S_POD_NAME),gpsoc.process={{ $process }}"
{{- end -}}

{{- define "gpsoc.podSecurity" -}}
{{- $c := . -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml $c.podSecurityContext | nindent 2 }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Writable scratch space: the root filesystem is read-only. */}}
{{- define "gpsoc.tmpVolume" -}}
volumes:
  - name: tmp
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
{{- end -}}

{{- define "gpsoc.tmpMount" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* NetworkPolicy egress rule: peers + ports. Usage: include "gpsoc.egressRule" (list $peers $ports "TCP") */}}
{{- define "gpsoc.peerRule" -}}
{{- $direction := index . 0 -}}{{- $peers := index . 1 -}}{{- $ports := index . 2 -}}
- {{ $direction }}:
    {{- toYaml $peers | nindent 4 }}
  ports:
    {{- range $ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end -}}

{{/* The ConfigMap data of a component (also hashed into pod annotations to roll on change). */}}
{{- define "gpsoc.configData" -}}
{{- $root := index . 0 -}}{{- $c := index . 1 -}}
{{- $data := dict
  "HOST" "0.0.0.0"
  "PORT" (toString (dig "processes" "api" "port" 8000 $c))
  "KAFKA_BOOTSTRAP_SERVERS" $root.Values.kafka.bootstrapServers
  "JWT_ISSUER" $root.Values.auth.issuer
  "JWT_AUDIENCE" $root.Values.auth.audience
  "PUBLIC_BASE_URL" $root.Values.publicBaseUrl
  "OTEL_SERVICE_NAME" $c.name
  "OTEL_TRACES_EXPORTER" (ternary "otlp" "none" $root.Values.telemetry.traces)
  "OTEL_EXPORTER_OTLP_ENDPOINT" $root.Values.telemetry.otlpEndpoint
  "OTEL_EXPORTER_OTLP_PROTOCOL" "http/protobuf"
-}}
{{- if $c.gateway -}}
{{- range $other := include "gpsoc.enabledComponents" $root | fromYamlArray -}}
{{- $o := get $root.Values.components $other -}}
{{- if and (not $o.gateway) (hasKey ($o.processes | default dict) "api") -}}
{{- $_ := set $data (printf "%s_URL" ($other | upper | replace "-" "_")) (printf "http://%s.%s.svc:80" (include "gpsoc.workloadName" (list $root $other "api")) $root.Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := ($c.env | default dict) -}}
{{- $_ := set $data $k (toString $v) -}}
{{- end -}}
{{- range $k := keys $data | sortAlpha }}
{{ $k }}: {{ get $data $k | quote }}
{{- end -}}
{{- end -}}
