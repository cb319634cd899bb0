package org.opengpsoc.fhirvalidator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.ConceptValidationOptions;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.context.support.ValidationSupportContext;
import java.util.concurrent.atomic.AtomicLong;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.CodeSystem;
import org.hl7.fhir.r4.model.ValueSet;

/**
 * Codes from code systems we do not hold offline (SNOMED CT, dm+d, LOINC, ...) become WARNINGS.
 *
 * <p>Without a terminology server their membership cannot be checked, and the stock modules
 * either say nothing (the code passes silently) or fail to expand the value set once and cache
 * that. Placed before {@link
 * org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport} in the
 * chain, this module answers for every code whose system has no CodeSystem available:
 *
 * <ul>
 *   <li>a value set that lists its codes of that system explicitly (no filters) is checked
 *       against the list, so a code missing from it is reported as the binding strength says;
 *   <li>anything else (intensional SNOMED CT value sets, a bare code check) is accepted with a
 *       WARNING that names the system, the code and the value set, so it is counted, not
 *       dropped. Every such message starts with {@link #PREFIX}.
 * </ul>
 */
final class OfflineTerminologyWarnings implements IValidationSupport {

  static final String PREFIX = "Not checked offline:";

  private final FhirContext ctx;
  private final IValidationSupport checkedInCode;
  private final AtomicLong reported = new AtomicLong();

  /** {@code checkedInCode}: the module that checks some systems without a CodeSystem (UCUM...). */
  OfflineTerminologyWarnings(FhirContext ctx, IValidationSupport checkedInCode) {
    this.ctx = ctx;
    this.checkedInCode = checkedInCode;
  }

  @Override
  public FhirContext getFhirContext() {
    return ctx;
  }

  @Override
  public String getName() {
    return "openGPSoC offline terminology warnings";
  }

  long reported() {
    return reported.get();
  }

  /**
   * True when no complete CodeSystem for the system is at hand (none at all, or only a stub
   * with content not-present/example/fragment, as the core package ships for SNOMED CT) and no
   * module checks it in code.
   */
  boolean unavailable(ValidationSupportContext context, String system) {
    if (system == null || system.isBlank()
        || checkedInCode.isCodeSystemSupported(context, system)) {
      return false;
    }
    IBaseResource codeSystem = context.getRootValidationSupport().fetchCodeSystem(system);
    return !(codeSystem instanceof CodeSystem cs)
        || cs.getContent() != CodeSystem.CodeSystemContentMode.COMPLETE;
  }

  @Override
  public boolean isCodeSystemSupported(ValidationSupportContext context, String system) {
    return unavailable(context, system);
  }

  @Override
  public boolean isValueSetSupported(ValidationSupportContext context, String valueSetUrl) {
    return true;
  }

  @Override
  public CodeValidationResult validateCode(ValidationSupportContext context,
      ConceptValidationOptions options, String system, String code, String display,
      String valueSetUrl) {
    if (!unavailable(context, system)) {
      return null;
    }
    if (valueSetUrl != null && !valueSetUrl.isBlank()) {
      IBaseResource valueSet = context.getRootValidationSupport().fetchValueSet(valueSetUrl);
      if (valueSet != null) {
        return validateCodeInValueSet(context, options, system, code, display, valueSet);
      }
    }
    return warning(system, code, display, null);
  }

  @Override
  public CodeValidationResult validateCodeInValueSet(ValidationSupportContext context,
      ConceptValidationOptions options, String system, String code, String display,
      IBaseResource valueSet) {
    if (!unavailable(context, system)) {
      return null;
    }
    if (valueSet instanceof ValueSet vs) {
      Boolean listed = listedExplicitly(vs, system, code);
      if (Boolean.TRUE.equals(listed)) {
        return new CodeValidationResult().setCode(code).setCodeSystemName(system).setDisplay(display);
      }
      if (Boolean.FALSE.equals(listed)) {
        String message = "The code " + system + "#" + code + " is not in the value set "
            + vs.getUrl() + " (which lists its codes of this system explicitly)";
        return new CodeValidationResult()
            .setSeverity(IssueSeverity.ERROR)
            .setMessage(message)
            .addIssue(new CodeValidationIssue(message, IssueSeverity.ERROR,
                CodeValidationIssueCode.CODE_INVALID, CodeValidationIssueCoding.NOT_IN_VS));
      }
      return warning(system, code, display, vs.getUrl());
    }
    return warning(system, code, display, null);
  }

  /**
   * TRUE or FALSE when the value set's includes of this system all list codes and none filter
   * (and nothing is excluded or imported), so membership is decidable offline; null otherwise.
   */
  private static Boolean listedExplicitly(ValueSet vs, String system, String code) {
    if (!vs.hasCompose() || vs.getCompose().hasExclude()) {
      return null;
    }
    boolean any = false;
    for (ValueSet.ConceptSetComponent include : vs.getCompose().getInclude()) {
      if (include.hasValueSet()) {
        return null;
      }
      if (!system.equals(include.getSystem())) {
        continue;
      }
      if (include.hasFilter() || !include.hasConcept()) {
        return null;
      }
      any = true;
      for (ValueSet.ConceptReferenceComponent concept : include.getConcept()) {
        if (code.equals(concept.getCode())) {
          return Boolean.TRUE;
        }
      }
    }
    return any ? Boolean.FALSE : null;
  }

  private CodeValidationResult warning(String system, String code, String display,
      String valueSetUrl) {
    reported.incrementAndGet();
    String message = PREFIX + " code system " + system + " is not available without a "
        + "terminology server, so " + system + "#" + code
        + (display == null || display.isBlank() ? "" : " ('" + display + "')")
        + (valueSetUrl == null ? " was not checked" : " was not checked against " + valueSetUrl);
    return new CodeValidationResult()
        .setCode(code)
        .setCodeSystemName(system)
        .setDisplay(display)
        .setSeverity(IssueSeverity.WARNING)
        .setMessage(message)
        .addIssue(new CodeValidationIssue(message, IssueSeverity.WARNING,
            CodeValidationIssueCode.NOT_FOUND, CodeValidationIssueCoding.NOT_FOUND));
  }
}
