// "Read aloud" with the browser's own speech; the button stays hidden where speech is missing.
(function () {
  "use strict";
  var button = document.getElementById("speak");
  var message = document.getElementById("message");
  if (!button || !message || !window.speechSynthesis || !window.SpeechSynthesisUtterance) return;
  var label = button.querySelector("span");
  var words = label.textContent;
  button.hidden = false;
  button.addEventListener("click", function () {
    var speech = window.speechSynthesis;
    if (speech.speaking) {
      speech.cancel();
      label.textContent = words;
      return;
    }
    // "This is a drill" (or "not in your language") first, in its own language.
    var notices = document.getElementById("notices");
    if (notices) {
      var first = new SpeechSynthesisUtterance(notices.innerText);
      first.lang = notices.lang;
      first.rate = 0.9;
      speech.speak(first);
    }
    var utterance = new SpeechSynthesisUtterance(message.innerText);
    utterance.lang = document.documentElement.lang;
    utterance.rate = 0.9;
    utterance.onend = utterance.onerror = function () { label.textContent = words; };
    label.textContent = button.getAttribute("data-stop");
    speech.speak(utterance);
  });
})();
