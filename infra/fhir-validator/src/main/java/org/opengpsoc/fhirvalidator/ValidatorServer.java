package org.opengpsoc.fhirvalidator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.context.support.ValidationSupportContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationOptions;
import ca.uhn.fhir.validation.ValidationResult;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.stream.Stream;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.Base;
import org.hl7.fhir.r4.model.CodeSystem;
import org.hl7.fhir.r4.model.Coding;
import org.hl7.fhir.r4.model.Property;
import org.hl7.fhir.r4.model.ElementDefinition;
import org.hl7.fhir.r4.model.Extension;
import org.hl7.fhir.r4.model.OperationOutcome;
import org.hl7.fhir.r4.model.StringType;
import org.hl7.fhir.r4.model.StructureDefinition;
import org.hl7.fhir.r4.model.ValueSet;

/**
 * A long-lived, offline FHIR R4 + UK Core validator on a loopback port, for the conformance suite.
 *
 * <pre>
 *   java -Xmx2g -jar fhir-validator.jar UK_CORE_DIR [PORT [DEFINITIONS_DIR...]]
 * </pre>
 *
 * Each DEFINITIONS_DIR (e.g. the repository's fhir/definitions) holds our own
 * StructureDefinitions, CodeSystems and ValueSets in JSON (or XML), loaded beside UK Core.
 *
 * Prints {@code LISTENING <port>} on stdout once warmed up, and exits when stdin closes (so it
 * never outlives the test session that started it). Endpoints:
 * <ul>
 *   <li>{@code POST /validate[?profile=URL]}: a resource (JSON) -> an OperationOutcome (JSON),
 *       one issue per message, each with its validator message id (extension
 *       operationoutcome-message-id). The resource's own meta.profile is always validated too.
 *   <li>{@code POST /convert}: a resource in XML (or JSON) -> the same resource in JSON, with
 *       the validator's own parser.
 *   <li>{@code GET /mustsupport?profile=URL}: the ids and paths of the elements the profile's
 *       snapshot marks mustSupport=true.
 *   <li>{@code GET /healthz}.
 * </ul>
 */
public final class ValidatorServer {

  static final String MESSAGE_ID_URL =
      "http://hl7.org/fhir/StructureDefinition/operationoutcome-message-id";

  private final FhirContext ctx;
  private final ValidationSupportChain chain;
  private final FhirValidator validator;
  private final Map<String, StructureDefinition> snapshots = new ConcurrentHashMap<>();
  private final int loaded;
  private final OfflineTerminologyWarnings offlineTerminology;
  private final CommonCodeSystemsTerminologyService commonCodeSystems;

  ValidatorServer(Path ukCore, List<Path> definitions) throws IOException {
    ctx = FhirContext.forR4();
    PrePopulatedValidationSupport ukCoreSupport = new PrePopulatedValidationSupport(ctx);
    int count = load(ukCore, ukCoreSupport);
    // Our own conformance resources (extensions, code systems), beside UK Core's.
    for (Path folder : definitions) {
      count += loadFolder(folder, ukCoreSupport);
    }
    loaded = count;

    // Code systems that cannot be checked offline (SNOMED CT, dm+d, LOINC, ...) answer as
    // warnings rather than errors, and are never silently accepted: the validator reports each.
    commonCodeSystems = new CommonCodeSystemsTerminologyService(ctx);
    offlineTerminology = new OfflineTerminologyWarnings(ctx, commonCodeSystems);
    UnknownCodeSystemWarningValidationSupport unknownCodeSystems =
        new UnknownCodeSystemWarningValidationSupport(ctx);
    unknownCodeSystems.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);

    chain = new ValidationSupportChain(
        new DefaultProfileValidationSupport(ctx),
        ukCoreSupport,
        new SnapshotGeneratingValidationSupport(ctx),
        offlineTerminology,
        new InMemoryTerminologyServerValidationSupport(ctx),
        commonCodeSystems,
        unknownCodeSystems);

    FhirInstanceValidator instanceValidator = new FhirInstanceValidator(chain);
    instanceValidator.setAnyExtensionsAllowed(false);
    instanceValidator.setErrorForUnknownProfiles(true);
    validator = ctx.newValidator();
    validator.registerValidatorModule(instanceValidator);
  }

  /** Loads every StructureDefinition, ValueSet and CodeSystem XML under the UK Core folder. */
  private int load(Path root, PrePopulatedValidationSupport support) throws IOException {
    IParser xml = ctx.newXmlParser();
    int count = 0;
    for (String folder : List.of("structuredefinitions", "valuesets", "codesystems")) {
      List<Path> files;
      try (Stream<Path> listing = Files.list(root.resolve(folder))) {
        files = listing.filter(p -> p.toString().endsWith(".xml")).sorted().toList();
      }
      for (Path file : files) {
        IBaseResource resource = xml.parseResource(Files.readString(file, StandardCharsets.UTF_8));
        if (resource instanceof StructureDefinition sd) {
          support.addStructureDefinition(sd);
        } else if (resource instanceof ValueSet vs) {
          support.addValueSet(vs);
        } else if (resource instanceof CodeSystem cs) {
          support.addCodeSystem(cs);
        } else {
          continue;
        }
        count++;
      }
    }
    return count;
  }

  /**
   * Loads every StructureDefinition, ValueSet and CodeSystem (JSON or XML) anywhere under a
   * folder of our own definitions (fhir/definitions in the repository).
   */
  private int loadFolder(Path root, PrePopulatedValidationSupport support) throws IOException {
    if (!Files.isDirectory(root)) {
      throw new IOException("definitions folder not found: " + root);
    }
    List<Path> files;
    try (Stream<Path> walk = Files.walk(root)) {
      files = walk.filter(Files::isRegularFile)
          .filter(p -> p.toString().endsWith(".json") || p.toString().endsWith(".xml"))
          .sorted().toList();
    }
    int count = 0;
    for (Path file : files) {
      String text = Files.readString(file, StandardCharsets.UTF_8);
      IParser parser = text.stripLeading().startsWith("<") ? ctx.newXmlParser() : ctx.newJsonParser();
      IBaseResource resource = parser.parseResource(text);
      if (resource instanceof StructureDefinition sd) {
        support.addStructureDefinition(sd);
      } else if (resource instanceof ValueSet vs) {
        support.addValueSet(vs);
      } else if (resource instanceof CodeSystem cs) {
        support.addCodeSystem(cs);
      } else {
        throw new IOException(file + " is not a StructureDefinition, ValueSet or CodeSystem");
      }
      count++;
    }
    return count;
  }

  /** Validates one resource (JSON text), against its meta.profile and any profiles named. */
  OperationOutcome validate(String json, List<String> profiles) {
    ValidationOptions options = new ValidationOptions();
    profiles.forEach(options::addProfile);
    ValidationResult result = validator.validateWithResult(json, options);
    OperationOutcome outcome = new OperationOutcome();
    for (SingleValidationMessage message : result.getMessages()) {
      OperationOutcome.OperationOutcomeIssueComponent issue = outcome.addIssue();
      issue.setSeverity(severity(message.getSeverity()));
      issue.setCode(OperationOutcome.IssueType.PROCESSING);
      issue.setDiagnostics(message.getMessage());
      if (message.getLocationString() != null) {
        issue.addLocation(message.getLocationString());
        issue.addExpression(message.getLocationString());
      }
      if (message.getMessageId() != null) {
        issue.addExtension(new Extension(MESSAGE_ID_URL, new StringType(message.getMessageId())));
      }
    }
    reportUncheckedCodings(json, outcome);
    if (outcome.getIssue().isEmpty()) {
      outcome.addIssue()
          .setSeverity(OperationOutcome.IssueSeverity.INFORMATION)
          .setCode(OperationOutcome.IssueType.INFORMATIONAL)
          .setDiagnostics("No issues detected during validation");
    }
    return outcome;
  }

  /**
   * The validator checks codes only where a binding asks it to (and not at all for preferred
   * bindings), so a SNOMED CT code under a preferred binding would pass in silence. Every Coding
   * in a code system we cannot check offline that no issue already covers gets its own warning.
   */
  private void reportUncheckedCodings(String json, OperationOutcome outcome) {
    IBaseResource parsed;
    try {
      parsed = ctx.newJsonParser().parseResource(json);
    } catch (RuntimeException e) {
      return; // unparseable input: the validator has reported it already
    }
    List<String[]> codings = new ArrayList<>();
    walk((Base) parsed, ((Base) parsed).fhirType(), codings);
    ValidationSupportContext context = new ValidationSupportContext(chain);
    for (String[] found : codings) {
      String path = found[0], parent = found[1], system = found[2], code = found[3];
      if (!offlineTerminology.unavailable(context, system)) {
        continue;
      }
      String needle = system + "#" + code;
      boolean covered = outcome.getIssue().stream().anyMatch(issue ->
          issue.getDiagnostics() != null
              && issue.getDiagnostics().startsWith(OfflineTerminologyWarnings.PREFIX)
              && issue.getDiagnostics().contains(needle)
              && issue.getExpression().stream().anyMatch(
                  e -> e.getValue().equals(path) || e.getValue().equals(parent)));
      if (covered) {
        continue;
      }
      outcome.addIssue()
          .setSeverity(OperationOutcome.IssueSeverity.WARNING)
          .setCode(OperationOutcome.IssueType.NOTSUPPORTED)
          .setDiagnostics(OfflineTerminologyWarnings.PREFIX + " code system " + system
              + " is not available without a terminology server, so " + needle
              + " was not checked (no binding check ran for it)")
          .addExpression(path)
          .addLocation(path)
          .addExtension(new Extension(MESSAGE_ID_URL, new StringType("OFFLINE_CODE_NOT_CHECKED")));
    }
  }

  /** Collects [path, parent path, system, code] of every Coding with both system and code. */
  private static void walk(Base element, String path, List<String[]> out) {
    if (element instanceof Coding coding && coding.hasSystem() && coding.hasCode()) {
      String parent = path.contains(".coding") ? path.substring(0, path.lastIndexOf(".coding")) : path;
      out.add(new String[] {path, parent, coding.getSystem(), coding.getCode()});
    }
    for (Property property : element.children()) {
      List<Base> values = property.getValues();
      String name = property.getName().replace("[x]", "");
      for (int i = 0; i < values.size(); i++) {
        Base value = values.get(i);
        if (value == null || value.isPrimitive()) {
          continue;
        }
        String child = path + "." + name + (property.getMaxCardinality() > 1 ? "[" + i + "]" : "");
        walk(value, child, out);
      }
    }
  }

  private static OperationOutcome.IssueSeverity severity(ResultSeverityEnum severity) {
    return switch (severity) {
      case FATAL -> OperationOutcome.IssueSeverity.FATAL;
      case ERROR -> OperationOutcome.IssueSeverity.ERROR;
      case WARNING -> OperationOutcome.IssueSeverity.WARNING;
      case INFORMATION -> OperationOutcome.IssueSeverity.INFORMATION;
    };
  }

  /** The profile with a snapshot (generated from its differential when it has none). */
  StructureDefinition snapshot(String url) {
    return snapshots.computeIfAbsent(url, key -> {
      IBaseResource fetched = chain.fetchStructureDefinition(key);
      if (!(fetched instanceof StructureDefinition sd)) {
        return null;
      }
      if (sd.hasSnapshot()) {
        return sd;
      }
      StructureDefinition copy = sd.copy();
      IBaseResource generated = chain.generateSnapshot(
          new ValidationSupportContext(chain), copy, copy.getUrl(), copy.getUrl(), copy.getName());
      return generated instanceof StructureDefinition g ? g : copy;
    });
  }

  /** The mustSupport elements of a profile, as a small JSON document. */
  String mustSupport(String url) {
    StructureDefinition sd = snapshot(url);
    if (sd == null) {
      return null;
    }
    List<ElementDefinition> elements =
        sd.hasSnapshot() ? sd.getSnapshot().getElement() : sd.getDifferential().getElement();
    StringBuilder out = new StringBuilder();
    out.append("{\"profile\":").append(quote(url))
        .append(",\"snapshot\":").append(sd.hasSnapshot())
        .append(",\"elements\":[");
    boolean first = true;
    for (ElementDefinition element : elements) {
      if (!element.getMustSupport()) {
        continue;
      }
      out.append(first ? "" : ",")
          .append("{\"id\":").append(quote(element.getId()))
          .append(",\"path\":").append(quote(element.getPath()))
          .append(",\"min\":").append(element.getMin())
          .append(",\"max\":").append(quote(element.getMax()))
          .append("}");
      first = false;
    }
    return out.append("]}").toString();
  }

  String convert(String body) {
    String trimmed = body.stripLeading();
    IParser parser = trimmed.startsWith("<") ? ctx.newXmlParser() : ctx.newJsonParser();
    return ctx.newJsonParser().setPrettyPrint(true).encodeResourceToString(
        parser.parseResource(body));
  }

  String encode(IBaseResource resource) {
    return ctx.newJsonParser().encodeResourceToString(resource);
  }

  private static String quote(String value) {
    if (value == null) {
      return "null";
    }
    StringBuilder out = new StringBuilder("\"");
    for (char c : value.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        default -> {
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    return out.append('"').toString();
  }

  // ----- HTTP ------------------------------------------------------------------------------

  private static Map<String, List<String>> query(URI uri) {
    Map<String, List<String>> params = new LinkedHashMap<>();
    String raw = uri.getRawQuery();
    if (raw == null || raw.isEmpty()) {
      return params;
    }
    for (String pair : raw.split("&")) {
      int eq = pair.indexOf('=');
      String name = URLDecoder.decode(eq < 0 ? pair : pair.substring(0, eq), StandardCharsets.UTF_8);
      String value = eq < 0 ? "" : URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
      params.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
    }
    return params;
  }

  private static void send(HttpExchange exchange, int status, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", "application/fhir+json; charset=utf-8");
    exchange.sendResponseHeaders(status, bytes.length);
    try (OutputStream out = exchange.getResponseBody()) {
      out.write(bytes);
    }
  }

  private String problem(String message) {
    OperationOutcome outcome = new OperationOutcome();
    outcome.addIssue()
        .setSeverity(OperationOutcome.IssueSeverity.FATAL)
        .setCode(OperationOutcome.IssueType.EXCEPTION)
        .setDiagnostics(message);
    return encode(outcome);
  }

  private void handle(HttpExchange exchange) throws IOException {
    try (exchange) {
      String path = exchange.getRequestURI().getPath();
      String method = exchange.getRequestMethod();
      Map<String, List<String>> params = query(exchange.getRequestURI());
      try {
        if (path.equals("/healthz")) {
          send(exchange, 200, "{\"status\":\"ok\",\"loaded\":" + loaded
              + ",\"offlineTerminologyWarnings\":" + offlineTerminology.reported() + "}");
        } else if (path.equals("/validate") && method.equals("POST")) {
          String body = read(exchange.getRequestBody());
          send(exchange, 200, encode(validate(body, params.getOrDefault("profile", List.of()))));
        } else if (path.equals("/convert") && method.equals("POST")) {
          send(exchange, 200, convert(read(exchange.getRequestBody())));
        } else if (path.equals("/mustsupport") && method.equals("GET")) {
          String url = params.getOrDefault("profile", List.of("")).get(0);
          String body = mustSupport(url);
          if (body == null) {
            send(exchange, 404, problem("Unknown profile " + url));
          } else {
            send(exchange, 200, body);
          }
        } else {
          send(exchange, 404, problem("No route " + method + " " + path));
        }
      } catch (RuntimeException e) {
        send(exchange, 400, problem(e.getClass().getSimpleName() + ": " + e.getMessage()));
      }
    }
  }

  private static String read(InputStream in) throws IOException {
    return new String(in.readAllBytes(), StandardCharsets.UTF_8);
  }

  private void warmUp() {
    // Builds the snapshots and caches the first validations need, before we say we are ready.
    String patient = "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":"
        + "[\"https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient\"]},"
        + "\"identifier\":[{\"system\":\"https://fhir.nhs.uk/Id/nhs-number\","
        + "\"value\":\"9000000009\"}],\"gender\":\"female\",\"birthDate\":\"1980-01-01\"}";
    validate(patient, List.of());
  }

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: fhir-validator UK_CORE_DIR [PORT [DEFINITIONS_DIR...]]");
      System.exit(2);
    }
    long started = System.nanoTime();
    List<Path> definitions = new ArrayList<>();
    for (int i = 2; i < args.length; i++) {
      definitions.add(Path.of(args[i]));
    }
    ValidatorServer server = new ValidatorServer(Path.of(args[0]), definitions);
    server.warmUp();
    int port = args.length > 1 ? Integer.parseInt(args[1]) : 0;
    HttpServer http = HttpServer.create(
        new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 16);
    http.createContext("/", server::handle);
    http.setExecutor(Executors.newFixedThreadPool(2));
    http.start();
    System.err.printf("fhir-validator: %d UK Core and openGPSoC conformance resources loaded, ready in %.1fs%n",
        server.loaded, (System.nanoTime() - started) / 1e9);
    System.out.println("LISTENING " + http.getAddress().getPort());
    System.out.flush();

    // The test session holds our stdin open; when it closes (the session ended or died),
    // stop, so that no validator outlives its run.
    Thread watchdog = new Thread(() -> {
      try {
        while (System.in.read() != -1) {
          // ignore anything written to us
        }
      } catch (IOException ignored) {
        // stdin gone: treat as closed
      }
      http.stop(0);
      System.exit(0);
    }, "stdin-watchdog");
    watchdog.setDaemon(false);
    watchdog.start();
  }
}
