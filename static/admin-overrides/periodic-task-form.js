// django-celery-beat's periodic task form: the crontab's help text also says, in words,
// when the chosen crontab runs. Moved out of the template because the
// Content-Security-Policy refuses inline scripts; the help text and the readable
// crontabs come from the page, not from template code inside a script.
"use strict";
{
  const $ = django.jQuery;
  const script = document.getElementById("periodic-task-overrides");
  const originalHelp = script.dataset.crontabHelp;
  const readableCrontabs = JSON.parse(document.getElementById("readable-crontabs").textContent);
  const help = $(".field-crontab .help");

  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    const translation = readableCrontabs[$("#id_crontab").val()];
    // Text, not HTML: the original built markup from the help text and the translation.
    help.empty().append(document.createTextNode(originalHelp), $("<br>"),
      document.createTextNode(`Translation: ${translation}`));
  });
}
