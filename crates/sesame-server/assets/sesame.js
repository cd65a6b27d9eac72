// sesame pages: small enhancements. Every form works without this script.
'use strict';
(function () {
  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function start() {
    // An error is announced by role="alert"; moving focus to it also puts
    // keyboard and screen-reader users right where the problem is explained.
    var alert = document.getElementById('alert');
    if (alert && alert.classList.contains('alert-error')) {
      alert.focus();
    }

    // "Show password" buttons.
    each('button[data-toggle]', function (button) {
      var input = document.getElementById(button.getAttribute('data-toggle'));
      if (!input) return;
      button.hidden = false;
      button.addEventListener('click', function () {
        var show = input.type === 'password';
        input.type = show ? 'text' : 'password';
        button.setAttribute('aria-pressed', show ? 'true' : 'false');
      });
    });

    // "Repeat the password" fields must match before the form is sent.
    each('input[data-match]', function (input) {
      var other = document.getElementById(input.getAttribute('data-match'));
      if (!other) return;
      function check() {
        var differs = input.value !== '' && input.value !== other.value;
        input.setCustomValidity(differs ? 'The passwords do not match.' : '');
      }
      input.addEventListener('input', check);
      other.addEventListener('input', check);
    });

    // One submission per click: the button says what is happening.
    each('form[data-busy]', function (form) {
      form.addEventListener('submit', function (event) {
        if (form.getAttribute('aria-busy') === 'true') {
          event.preventDefault();
          return;
        }
        form.setAttribute('aria-busy', 'true');
        var button = form.querySelector('button[type="submit"]');
        if (button) {
          button.setAttribute('data-label', button.textContent);
          button.textContent = form.getAttribute('data-busy');
          button.setAttribute('aria-disabled', 'true');
        }
      });
    });

    // Rate limited or overloaded: count the wait down on the submit button.
    var countdown = document.querySelector('[data-retry-after]');
    if (countdown) {
      var left = parseInt(countdown.getAttribute('data-retry-after'), 10) || 1;
      var form = document.querySelector('form[data-busy]');
      var button = form && form.querySelector('button[type="submit"]');
      var label = button ? button.textContent : '';
      var tick = function () {
        if (left <= 0) {
          countdown.textContent = 'You can try again now.';
          if (button) {
            button.disabled = false;
            button.textContent = label;
          }
          return;
        }
        countdown.textContent = 'You can try again in ' + left + (left === 1 ? ' second.' : ' seconds.');
        if (button) {
          button.disabled = true;
          button.textContent = label + ' (' + left + ' s)';
        }
        left -= 1;
        window.setTimeout(tick, 1000);
      };
      tick();
    }

    // Session end in the reader's own time zone.
    each('time[datetime]', function (el) {
      var when = new Date(el.getAttribute('datetime'));
      if (!isNaN(when.getTime())) {
        el.textContent = when.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
      }
    });
  }

  // Back to a page left while it was submitting: make it usable again.
  window.addEventListener('pageshow', function (event) {
    if (!event.persisted) return;
    each('form[aria-busy="true"]', function (form) {
      form.removeAttribute('aria-busy');
      var button = form.querySelector('button[type="submit"]');
      if (button && button.hasAttribute('data-label')) {
        button.textContent = button.getAttribute('data-label');
        button.removeAttribute('aria-disabled');
      }
    });
  });

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
